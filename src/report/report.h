/* The reports of `tollgate report NAME`: each is a view of the store (report_NAME,
 * migration 8, docs/query.md) that a user can also read and extend with `tollgate query`;
 * a report is that view filtered on its day and tenant columns, in a fixed order.
 *
 * Days are UTC "YYYY-MM-DD" and both bounds are inclusive: --from 2026-11-01 --to
 * 2026-11-30 is November, as `tollgate usage` reads them. */
#ifndef TG_REPORT_REPORT_H
#define TG_REPORT_REPORT_H

#include <stddef.h>

#include "store/store.h"
#include "util/err.h"

typedef struct tg_report {
    const char *name;     /* "daily", as given to `tollgate report` */
    const char *view;     /* "report_daily" */
    const char *order_by; /* the rows' order, columns of the view */
    const char *summary;  /* one line for the usage text */
} tg_report_t;

/* Every report, NULL-terminated by a zero entry (name NULL). */
extern const tg_report_t tg_reports[];

/* The report named name, or NULL. */
const tg_report_t *tg_report_find(const char *name);

/* "daily, hourly, ..." into buf of cap bytes: what an error lists. */
const char *tg_report_names(char *buf, size_t cap);

/* What the report filters on: from_day, to_day ("YYYY-MM-DD", inclusive) and tenant, each
 * NULL for no bound. */
typedef struct tg_report_query {
    const char *from_day;
    const char *to_day;
    const char *tenant;
} tg_report_query_t;

/* The SQL of r filtered by q's bounds (bound as $1 from, $2 to, $3 tenant), into buf of
 * cap bytes, read alike by SQLite and PostgreSQL. 0, or -1 when it does not fit. */
int tg_report_sql(const tg_report_t *r, char *buf, size_t cap);

/* Runs report r over store s, rows streamed to sink (tg_store_query). */
int tg_report_run(tg_store_t *s, const tg_report_t *r, const tg_report_query_t *q,
                  const tg_sql_sink_t *sink, tg_err_t *err);

#endif
