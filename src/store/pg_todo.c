/* PostgreSQL store: the concerns not written yet. Each operation fails with a clear
 * error; each table here is replaced by its pg_<concern>.c as it lands (issue 13). */
#include "store/pg_int.h"

static int todo_event_append(tg_store_t *s, const tg_event_t *evs, size_t n, size_t *inserted,
                             tg_err_t *err)
{
    (void)s;
    (void)evs;
    (void)n;
    (void)inserted;
    return tg_err_set(err, "postgres store: event.append is not written yet");
}

static int todo_event_ingest(tg_store_t *s, const tg_ingest_item_t *items, size_t n,
                             size_t *inserted, size_t *duplicates, tg_err_t *err)
{
    (void)s;
    (void)items;
    (void)n;
    (void)inserted;
    (void)duplicates;
    return tg_err_set(err, "postgres store: event.ingest is not written yet");
}

static int todo_event_purge(tg_store_t *s, int64_t events_before_us, const char *agg_before_day,
                            int64_t *deleted, tg_err_t *err)
{
    (void)s;
    (void)events_before_us;
    (void)agg_before_day;
    (void)deleted;
    return tg_err_set(err, "postgres store: event.purge is not written yet");
}

static int todo_event_usage(tg_store_t *s, const tg_usage_query_t *q,
                            int (*cb)(const tg_usage_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s;
    (void)q;
    (void)cb;
    (void)ud;
    return tg_err_set(err, "postgres store: event.usage is not written yet");
}

static int todo_event_spend(tg_store_t *s, const char *tenant, const char *from_day,
                            const char *to_day, int64_t *micros, tg_err_t *err)
{
    (void)s;
    (void)tenant;
    (void)from_day;
    (void)to_day;
    (void)micros;
    return tg_err_set(err, "postgres store: event.spend is not written yet");
}

const struct tg_store_event_ops pg_event_ops = {
    .append = todo_event_append,
    .ingest = todo_event_ingest,
    .purge = todo_event_purge,
    .usage = todo_event_usage,
    .spend = todo_event_spend,
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
