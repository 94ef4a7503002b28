/* PostgreSQL store: the concerns not written yet. Each operation fails with a clear
 * error; each table here is replaced by its pg_<concern>.c as it lands (issue 13). */
#include "store/pg_int.h"

static int todo_policy_policy_version(tg_store_t *s, int64_t *out, tg_err_t *err)
{
    (void)s;
    (void)out;
    return tg_err_set(err, "postgres store: policy.policy_version is not written yet");
}

static int todo_policy_limit_set(tg_store_t *s, const tg_limit_row_t *row, tg_err_t *err)
{
    (void)s;
    (void)row;
    return tg_err_set(err, "postgres store: policy.limit_set is not written yet");
}

static int todo_policy_limit_rm(tg_store_t *s, const char *tenant, const char *scope,
                                const char *value, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)scope;
    (void)value;
    return tg_err_set(err, "postgres store: policy.limit_rm is not written yet");
}

static int todo_policy_limit_list(tg_store_t *s, const char *tenant,
                                  int (*cb)(const tg_limit_row_t *, void *), void *ud,
                                  tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: policy.limit_list is not written yet");
}

static int todo_policy_pause_set(tg_store_t *s, const char *tenant, const char *reason,
                                 int64_t now_us, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)reason;
    (void)now_us;
    return tg_err_set(err, "postgres store: policy.pause_set is not written yet");
}

static int todo_policy_pause_clear(tg_store_t *s, const char *tenant, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    return tg_err_set(err, "postgres store: policy.pause_clear is not written yet");
}

static int todo_policy_pause_list(tg_store_t *s, int (*cb)(const tg_pause_row_t *, void *),
                                  void *ud, tg_err_t *err)
{
    (void)s;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: policy.pause_list is not written yet");
}

static int todo_policy_ip_rule_add(tg_store_t *s, const tg_ip_rule_row_t *row, tg_err_t *err)
{
    (void)s;
    (void)row;
    return tg_err_set(err, "postgres store: policy.ip_rule_add is not written yet");
}

static int todo_policy_ip_rule_rm(tg_store_t *s, const char *tenant, const char *action,
                                  const char *cidr, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)action;
    (void)cidr;
    return tg_err_set(err, "postgres store: policy.ip_rule_rm is not written yet");
}

static int todo_policy_ip_rule_list(tg_store_t *s, const char *tenant,
                                    int (*cb)(const tg_ip_rule_row_t *, void *), void *ud,
                                    tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: policy.ip_rule_list is not written yet");
}

static int todo_policy_tool_rule_add(tg_store_t *s, const tg_tool_rule_row_t *row, tg_err_t *err)
{
    (void)s;
    (void)row;
    return tg_err_set(err, "postgres store: policy.tool_rule_add is not written yet");
}

static int todo_policy_tool_rule_rm(tg_store_t *s, const char *tenant, const char *action,
                                    const char *pattern, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)action;
    (void)pattern;
    return tg_err_set(err, "postgres store: policy.tool_rule_rm is not written yet");
}

static int todo_policy_tool_rule_list(tg_store_t *s, const char *tenant,
                                      int (*cb)(const tg_tool_rule_row_t *, void *), void *ud,
                                      tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: policy.tool_rule_list is not written yet");
}

const struct tg_store_policy_ops pg_policy_ops = {
    .policy_version = todo_policy_policy_version,
    .limit_set = todo_policy_limit_set,
    .limit_rm = todo_policy_limit_rm,
    .limit_list = todo_policy_limit_list,
    .pause_set = todo_policy_pause_set,
    .pause_clear = todo_policy_pause_clear,
    .pause_list = todo_policy_pause_list,
    .ip_rule_add = todo_policy_ip_rule_add,
    .ip_rule_rm = todo_policy_ip_rule_rm,
    .ip_rule_list = todo_policy_ip_rule_list,
    .tool_rule_add = todo_policy_tool_rule_add,
    .tool_rule_rm = todo_policy_tool_rule_rm,
    .tool_rule_list = todo_policy_tool_rule_list,
};

static int todo_price_price_set(tg_store_t *s, const tg_price_row_t *row, tg_err_t *err)
{
    (void)s;
    (void)row;
    return tg_err_set(err, "postgres store: price.price_set is not written yet");
}

static int todo_price_price_rm(tg_store_t *s, const char *meter, const char *name,
                               int64_t effective_us, tg_err_t *err)
{
    (void)s;
    (void)meter;
    (void)name;
    (void)effective_us;
    return tg_err_set(err, "postgres store: price.price_rm is not written yet");
}

static int todo_price_price_list(tg_store_t *s, int (*cb)(const tg_price_row_t *, void *), void *ud,
                                 tg_err_t *err)
{
    (void)s;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: price.price_list is not written yet");
}

static int todo_price_budget_set(tg_store_t *s, const tg_budget_row_t *row, tg_err_t *err)
{
    (void)s;
    (void)row;
    return tg_err_set(err, "postgres store: price.budget_set is not written yet");
}

static int todo_price_budget_rm(tg_store_t *s, const char *tenant, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    return tg_err_set(err, "postgres store: price.budget_rm is not written yet");
}

static int todo_price_budget_list(tg_store_t *s, const char *tenant,
                                  int (*cb)(const tg_budget_row_t *, void *), void *ud,
                                  tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: price.budget_list is not written yet");
}

const struct tg_store_price_ops pg_price_ops = {
    .price_set = todo_price_price_set,
    .price_rm = todo_price_price_rm,
    .price_list = todo_price_price_list,
    .budget_set = todo_price_budget_set,
    .budget_rm = todo_price_budget_rm,
    .budget_list = todo_price_budget_list,
};

static int todo_alert_alert_add(tg_store_t *s, const tg_alert_row_t *row, int *inserted,
                                tg_err_t *err)
{
    (void)s;
    (void)row;
    (void)inserted;
    return tg_err_set(err, "postgres store: alert.alert_add is not written yet");
}

static int todo_alert_alert_list(tg_store_t *s, const char *tenant,
                                 int (*cb)(const tg_alert_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: alert.alert_list is not written yet");
}

const struct tg_store_alert_ops pg_alert_ops = {
    .alert_add = todo_alert_alert_add,
    .alert_list = todo_alert_alert_list,
};

static int todo_alarm_alarm_put(tg_store_t *s, const tg_alarm_row_t *rows, size_t nrows,
                                const tg_alarm_event_row_t *evs, size_t nevs, tg_err_t *err)
{
    (void)s;
    (void)rows;
    (void)nrows;
    (void)evs;
    (void)nevs;
    return tg_err_set(err, "postgres store: alarm.alarm_put is not written yet");
}

static int todo_alarm_alarm_list(tg_store_t *s, int (*cb)(const tg_alarm_row_t *, void *), void *ud,
                                 tg_err_t *err)
{
    (void)s;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: alarm.alarm_list is not written yet");
}

static int todo_alarm_alarm_events(tg_store_t *s, const char *tenant, int64_t limit,
                                   int (*cb)(const tg_alarm_event_row_t *, void *), void *ud,
                                   tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)limit;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: alarm.alarm_events is not written yet");
}

const struct tg_store_alarm_ops pg_alarm_ops = {
    .alarm_put = todo_alarm_alarm_put,
    .alarm_list = todo_alarm_alarm_list,
    .alarm_events = todo_alarm_alarm_events,
};

static int todo_outbox_add(tg_store_t *s, const tg_notice_t *n, const char *const *notifiers,
                           size_t nnotifiers, int64_t now_us, int *inserted, tg_err_t *err)
{
    (void)s;
    (void)n;
    (void)notifiers;
    (void)nnotifiers;
    (void)now_us;
    (void)inserted;
    return tg_err_set(err, "postgres store: outbox.add is not written yet");
}

static int todo_outbox_claim(tg_store_t *s, int64_t now_us, int64_t lease_until_us, size_t max,
                             const char *notifier, int (*cb)(const tg_notice_delivery_t *, void *),
                             void *ud, tg_err_t *err)
{
    (void)s;
    (void)now_us;
    (void)lease_until_us;
    (void)max;
    (void)notifier;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: outbox.claim is not written yet");
}

static int todo_outbox_set(tg_store_t *s, const char *notice_id, const char *notifier,
                           const char *status, int attempts, int64_t next_us, const char *error,
                           int64_t now_us, tg_err_t *err)
{
    (void)s;
    (void)notice_id;
    (void)notifier;
    (void)status;
    (void)attempts;
    (void)next_us;
    (void)error;
    (void)now_us;
    return tg_err_set(err, "postgres store: outbox.set is not written yet");
}

static int todo_outbox_defer(tg_store_t *s, const char *notifier, int64_t until_us, int64_t now_us,
                             tg_err_t *err)
{
    (void)s;
    (void)notifier;
    (void)until_us;
    (void)now_us;
    return tg_err_set(err, "postgres store: outbox.defer is not written yet");
}

static int todo_outbox_next(tg_store_t *s, const char *notifier, int64_t *next_us, int *found,
                            tg_err_t *err)
{
    (void)s;
    (void)notifier;
    (void)next_us;
    (void)found;
    return tg_err_set(err, "postgres store: outbox.next is not written yet");
}

static int todo_outbox_notifiers(tg_store_t *s, int (*cb)(const char *notifier, void *), void *ud,
                                 tg_err_t *err)
{
    (void)s;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: outbox.notifiers is not written yet");
}

static int todo_outbox_list(tg_store_t *s, const char *status,
                            int (*cb)(const tg_notice_delivery_t *, void *), void *ud,
                            tg_err_t *err)
{
    (void)s;
    (void)status;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: outbox.list is not written yet");
}

static int todo_outbox_purge(tg_store_t *s, int64_t before_us, int64_t *deleted, tg_err_t *err)
{
    (void)s;
    (void)before_us;
    (void)deleted;
    return tg_err_set(err, "postgres store: outbox.purge is not written yet");
}

const struct tg_store_outbox_ops pg_outbox_ops = {
    .add = todo_outbox_add,
    .claim = todo_outbox_claim,
    .set = todo_outbox_set,
    .defer = todo_outbox_defer,
    .next = todo_outbox_next,
    .notifiers = todo_outbox_notifiers,
    .list = todo_outbox_list,
    .purge = todo_outbox_purge,
};

static int todo_dash_read_only(tg_store_t *s, tg_err_t *err)
{
    (void)s;
    return tg_err_set(err, "postgres store: dash.read_only is not written yet");
}

static int todo_dash_totals(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                            int (*cb)(const tg_dash_totals_t *, void *), void *ud, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)from_us;
    (void)to_us;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: dash.totals is not written yet");
}

static int todo_dash_series(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                            int64_t bucket_us, int (*cb)(const tg_dash_bucket_t *, void *),
                            void *ud, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)from_us;
    (void)to_us;
    (void)bucket_us;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: dash.series is not written yet");
}

static int todo_dash_rejections(tg_store_t *s, const char *tenant, int limit,
                                int (*cb)(const tg_dash_rejection_t *, void *), void *ud,
                                tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)limit;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: dash.rejections is not written yet");
}

const struct tg_store_dash_ops pg_dash_ops = {
    .read_only = todo_dash_read_only,
    .totals = todo_dash_totals,
    .series = todo_dash_series,
    .rejections = todo_dash_rejections,
};

static int todo_invoice_plan_set(tg_store_t *s, const tg_plan_t *p, tg_err_t *err)
{
    (void)s;
    (void)p;
    return tg_err_set(err, "postgres store: invoice.plan_set is not written yet");
}

static int todo_invoice_plan_rm(tg_store_t *s, const char *name, int64_t effective_us,
                                tg_err_t *err)
{
    (void)s;
    (void)name;
    (void)effective_us;
    return tg_err_set(err, "postgres store: invoice.plan_rm is not written yet");
}

static int todo_invoice_plan_list(tg_store_t *s, const char *name,
                                  int (*cb)(const tg_plan_t *, void *), void *ud, tg_err_t *err)
{
    (void)s;
    (void)name;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: invoice.plan_list is not written yet");
}

static int todo_invoice_plan_get(tg_store_t *s, const char *name, int64_t at_us, tg_plan_t *out,
                                 tg_err_t *err)
{
    (void)s;
    (void)name;
    (void)at_us;
    (void)out;
    return tg_err_set(err, "postgres store: invoice.plan_get is not written yet");
}

static int todo_invoice_tenant_plan_set(tg_store_t *s, const tg_tenant_plan_row_t *row,
                                        tg_err_t *err)
{
    (void)s;
    (void)row;
    return tg_err_set(err, "postgres store: invoice.tenant_plan_set is not written yet");
}

static int todo_invoice_tenant_plan_rm(tg_store_t *s, const char *tenant, const char *from_month,
                                       tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)from_month;
    return tg_err_set(err, "postgres store: invoice.tenant_plan_rm is not written yet");
}

static int todo_invoice_tenant_plan_list(tg_store_t *s, const char *tenant,
                                         int (*cb)(const tg_tenant_plan_row_t *, void *), void *ud,
                                         tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: invoice.tenant_plan_list is not written yet");
}

static int todo_invoice_usage(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                              int (*cb)(const tg_plan_usage_row_t *, void *), void *ud,
                              tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)from_us;
    (void)to_us;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: invoice.usage is not written yet");
}

static int todo_invoice_close(tg_store_t *s, const tg_invoice_row_t *inv,
                              const tg_invoice_line_t *lines, size_t nlines,
                              const tg_invoice_billed_t *meters, size_t nmeters,
                              const tg_invoice_billed_t *rebilled, size_t nrebilled, tg_err_t *err)
{
    (void)s;
    (void)inv;
    (void)lines;
    (void)nlines;
    (void)meters;
    (void)nmeters;
    (void)rebilled;
    (void)nrebilled;
    return tg_err_set(err, "postgres store: invoice.close is not written yet");
}

static int todo_invoice_get(tg_store_t *s, const char *tenant, const char *month,
                            tg_invoice_row_t *out, int (*cb)(const tg_invoice_line_t *, void *),
                            void *ud, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)month;
    (void)out;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: invoice.get is not written yet");
}

static int todo_invoice_list(tg_store_t *s, const char *tenant,
                             int (*cb)(const tg_invoice_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: invoice.list is not written yet");
}

static int todo_invoice_billed(tg_store_t *s, const char *tenant, const char *month,
                               int (*cb)(const tg_invoice_billed_t *, void *), void *ud,
                               tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)month;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: invoice.billed is not written yet");
}

static int todo_invoice_event_range(tg_store_t *s, const char *tenant, int64_t from_us,
                                    int64_t to_us, int (*cb)(const tg_event_t *, void *), void *ud,
                                    tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)from_us;
    (void)to_us;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: invoice.event_range is not written yet");
}

const struct tg_store_invoice_ops pg_invoice_ops = {
    .plan_set = todo_invoice_plan_set,
    .plan_rm = todo_invoice_plan_rm,
    .plan_list = todo_invoice_plan_list,
    .plan_get = todo_invoice_plan_get,
    .tenant_plan_set = todo_invoice_tenant_plan_set,
    .tenant_plan_rm = todo_invoice_tenant_plan_rm,
    .tenant_plan_list = todo_invoice_tenant_plan_list,
    .usage = todo_invoice_usage,
    .close = todo_invoice_close,
    .get = todo_invoice_get,
    .list = todo_invoice_list,
    .billed = todo_invoice_billed,
    .event_range = todo_invoice_event_range,
};

static int todo_sql_query(tg_store_t *s, const char *sql, const char *const *params, size_t nparams,
                          const tg_sql_sink_t *sink, tg_err_t *err)
{
    (void)s;
    (void)sql;
    (void)params;
    (void)nparams;
    (void)sink;
    return tg_err_set(err, "postgres store: sql.query is not written yet");
}

static int todo_sql_backup(tg_store_t *s, const char *dest_path, int pages, int64_t *npages,
                           tg_err_t *err)
{
    (void)s;
    (void)dest_path;
    (void)pages;
    (void)npages;
    return tg_err_set(err, "postgres store: sql.backup is not written yet");
}

static int todo_sql_events_delete(tg_store_t *s, const int64_t *ids, size_t n, int64_t before_us,
                                  int64_t *deleted, tg_err_t *err)
{
    (void)s;
    (void)ids;
    (void)n;
    (void)before_us;
    (void)deleted;
    return tg_err_set(err, "postgres store: sql.events_delete is not written yet");
}

const struct tg_store_sql_ops pg_sql_ops = {
    .query = todo_sql_query,
    .backup = todo_sql_backup,
    .events_delete = todo_sql_events_delete,
};
