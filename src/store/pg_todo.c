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
