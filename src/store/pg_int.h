/* Private to the PostgreSQL backend: what postgres.c (open, close, migrations, the shared
 * helpers) and the files of each concern (pg_events.c, pg_tenants.c, ...) share. Nothing
 * outside src/store/pg*.c and postgres.c includes it, except the store's unit tests.
 *
 * One tg_store_t is one libpq connection (PGconn), used by one thread (store.h). Statements
 * are prepared on the connection on first use (PQprepare, named "s<slot>") and kept until it
 * closes or is made again; parameters are $1, $2, ...; results are read as text, except
 * bytea parameters, sent binary. A lost connection is made again at the next call (PQreset),
 * and the call that found it lost answers TG_STORE_BUSY, so the recorder spools and retries,
 * as it does while SQLite is locked.
 *
 * Adding a table to this backend: its migration's PostgreSQL text (migrations.c), the
 * statements' slots in the enum below; then, in the file of its concern, the statements'
 * SQL (pg_sql_t), the row mapping (rowmap.h, shared with SQLite where the columns read
 * alike), the functions, and their place in the concern's table. */
#ifndef TG_STORE_PG_INT_H
#define TG_STORE_PG_INT_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store/backend.h"
#include "store/evbatch.h"
#include "store/rowmap.h"
#include "util/utf8.h"

/* Statement slots, grouped by the file that owns the SQL. */
enum {
    /* postgres.c */
    PS_AUTH_BUMP,
    PS_AUTH_VERSION,
    PS_POLICY_BUMP,
    PS_POLICY_VERSION,
    /* pg_tenants.c */
    PS_TENANT_ADD,
    PS_TENANT_GET,
    PS_TENANT_LIST,
    PS_TENANT_STATUS,
    PS_KEY_ADD,
    PS_KEY_LIST,
    PS_KEY_REVOKE,
    PS_KEY_GET,
    PS_KEY_EXPIRE,
    PS_KEY_RESEAL,
    PS_AUTH_LOAD,
    /* pg_policy.c */
    PS_LIMIT_SET,
    PS_LIMIT_RM,
    PS_LIMIT_LIST,
    PS_PAUSE_SET,
    PS_PAUSE_CLEAR,
    PS_PAUSE_LIST,
    PS_IP_ADD,
    PS_IP_RM,
    PS_IP_LIST,
    PS_TOOL_ADD,
    PS_TOOL_RM,
    PS_TOOL_LIST,
    /* pg_prices.c */
    PS_PRICE_SET,
    PS_PRICE_RM,
    PS_PRICE_RM_ALL,
    PS_PRICE_LIST,
    PS_BUDGET_SET,
    PS_BUDGET_RM,
    PS_BUDGET_LIST,
    /* pg_alerts.c */
    PS_ALERT_ADD,
    PS_ALERT_LIST,
    /* pg_alarms.c */
    PS_ALARM_PUT,
    PS_ALARM_EVENT_ADD,
    PS_ALARM_LIST,
    PS_ALARM_EVENTS,
    PS_ALARM_EVENTS_PURGE,
    /* pg_outbox.c */
    PS_OUTBOX_ADD,
    PS_OUTBOX_DELIVERY_ADD,
    PS_OUTBOX_CLAIM,
    PS_OUTBOX_SET,
    PS_OUTBOX_DEFER,
    PS_OUTBOX_NEXT,
    PS_OUTBOX_NOTIFIERS,
    PS_OUTBOX_LIST,
    PS_OUTBOX_PURGE,
    PS_OUTBOX_SEALED_EACH,
    PS_OUTBOX_RESEAL,
    /* pg_dash.c */
    PS_DASH_TOTALS,
    PS_DASH_SERIES,
    PS_DASH_REJECTIONS,
    /* pg_invoices.c */
    PS_PLAN_INSERT,
    PS_PLAN_RM,
    PS_PLAN_RM_ALL,
    PS_PLAN_LIST,
    PS_PLAN_GET,
    PS_PLAN_METER_INSERT,
    PS_PLAN_METERS,
    PS_PLAN_TIER_INSERT,
    PS_PLAN_TIERS,
    PS_TENANT_PLAN_SET,
    PS_TENANT_PLAN_RM,
    PS_TENANT_PLAN_LIST,
    PS_PLAN_USAGE,
    PS_INVOICE_INSERT,
    PS_INVOICE_LINE_INSERT,
    PS_INVOICE_METER_PUT,
    PS_INVOICE_GET,
    PS_INVOICE_LINES,
    PS_INVOICE_LIST,
    PS_INVOICE_BILLED,
    PS_EVENT_RANGE,
    PS_EVENT_RANGE_ALL,
    /* pg_audit.c */
    PS_AUDIT_HEAD,
    PS_AUDIT_HEAD_LOCK,
    PS_AUDIT_HEAD_MAKE,
    PS_AUDIT_INSERT,
    PS_AUDIT_HEAD_SET,
    PS_AUDIT_RANGE,
    PS_AUDIT_FIND,
    PS_AUDIT_ERASE_SEL,
    PS_AUDIT_ERASE_SET,
    PS_AUDIT_ERASE_EVENTS,
    PS_AUDIT_ERASE_KEYS,
    PS_AUDIT_PURGE,
    PS_AUDIT_IDS,
    PS_AUDIT_DAY_FROM,
    PS_AUDIT_BODY_PUT,
    PS_AUDIT_BODY_GET,
    PS_AUDIT_BODY_EACH,
    PS_AUDIT_BODY_RESEAL,
    PS_AUDIT_BODY_ERASE,
    PS_AUDIT_BODY_PURGE,
    /* pg_sql.c */
    PS_EV_DELETE_IDS,
    /* pg_events.c */
    PS_EV_PARTITION,
    PS_EV_STAGE_INSERT,
    PS_EV_STAGE_CLASH,
    PS_EV_INSERT_ONE,
    PS_EV_PEEK,
    PS_DAILY_UPSERT,
    PS_KEY_USED,
    PS_INGEST_SEEN,
    PS_INGEST_UNKNOWN,
    PS_PURGE_DROP,
    PS_PURGE_MISPLACED,
    PS_PURGE_EVENTS,
    PS_PURGE_DAILY,
    PS_SPEND,
    /* pg_admintok.c */
    PS_ADMIN_TOKEN_ADD,
    PS_ADMIN_TOKEN_LIST,
    PS_ADMIN_TOKEN_REVOKE,
    PS_ADMIN_TOKEN_TOUCH,
    PS_COUNT
};

/* One statement: its slot and its SQL. With select, the SQL is "SELECT " and the map's
 * column list, then sql (from FROM on). With build, a function builds the SQL (malloc'd,
 * freed once prepared). */
typedef struct pg_sql {
    int slot;
    const char *sql;
    const tg_rowmap_t *select;
    char *(*build)(void);
} pg_sql_t;

/* The most parameters one statement of this backend binds (a multi-row statement builds
 * its own arrays). */
#define PG_MAX_PARAMS 32

/* A statement's parameters, added in order ($1, $2, ...). Numbers are kept as text in num;
 * text and bytea values point at the caller's memory, which must outlive the call. */
typedef struct pg_params {
    int n;
    const char *val[PG_MAX_PARAMS];
    int len[PG_MAX_PARAMS];
    int fmt[PG_MAX_PARAMS]; /* 0 text, 1 binary */
    char num[PG_MAX_PARAMS][24];
} pg_params_t;

/* A NUL-terminated string; NULL is SQL NULL. */
void pg_p_text(pg_params_t *p, const char *s);
/* A fixed-size field of cap bytes (read up to its NUL or cap); NULL when empty and
 * null_if_empty. Sent as binary text, so a field without its NUL is never read past. */
void pg_p_field(pg_params_t *p, const char *f, size_t cap, int null_if_empty);
#define PG_P_ROW(p, row, field) pg_p_field((p), (row)->field, sizeof(row)->field, 0)
void pg_p_int64(pg_params_t *p, int64_t v);
/* v, or NULL when v < 0 (an amount or a token count not set). */
void pg_p_amount(pg_params_t *p, int64_t v);
void pg_p_double(pg_params_t *p, double v);
void pg_p_null(pg_params_t *p);
/* n bytes as a bytea. */
void pg_p_bytea(pg_params_t *p, const void *b, size_t n);

/* One connection. Not shared between threads (store.h). */
typedef struct pg_store {
    tg_store_t base; /* first: a tg_store_t * is a pg_store_t * */
    PGconn *conn;
    int readonly; /* tg_store_open_readonly: every transaction READ ONLY */
    long busy_ms; /* tg_store_set_busy_timeout's wait, -1 unset: set again on a new session */
    unsigned char prepared[PS_COUNT]; /* slot prepared on this connection */
    char where[160]; /* "postgres://HOST:PORT/DB" for messages: never the password */
    char state[6];   /* the SQLSTATE of the last pg_fail ("" when it had none) */
    /* scratch for TG_COL_BLOB_PTR columns of the row being read */
    unsigned char blob[4][64];
    /* pg_events.c's per-connection state (its scratch, the months whose partitions exist,
     * the session holding its staging tables); NULL until the first append or ingest. */
    struct pg_events *ev;
} pg_store_t;

/* The tables of each concern, assembled into the handle by tg_postgres_open. */
extern const struct tg_store_event_ops pg_event_ops;
extern const struct tg_store_tenant_ops pg_tenant_ops;
extern const struct tg_store_policy_ops pg_policy_ops;
extern const struct tg_store_price_ops pg_price_ops;
extern const struct tg_store_alert_ops pg_alert_ops;
extern const struct tg_store_alarm_ops pg_alarm_ops;
extern const struct tg_store_outbox_ops pg_outbox_ops;
/* Deletes alarm_events older than before_us (pg_alarms.c) in one transaction and adds the
 * number deleted to *deleted: part of the retention purge (tg_store_purge), as
 * sq_alarm_events_purge is for SQLite. */
int pg_alarm_events_purge(pg_store_t *s, int64_t before_us, int64_t *deleted, tg_err_t *err);
extern const struct tg_store_dash_ops pg_dash_ops;
extern const struct tg_store_invoice_ops pg_invoice_ops;
extern const struct tg_store_sql_ops pg_sql_ops;
extern const struct tg_store_audit_ops pg_audit_ops;
/* Inside the caller's transaction (the writer's append): as sq_audit_calls (pg_audit.c). */
int pg_audit_calls(pg_store_t *s, const ev_run_t *evs, const int64_t *stored, tg_err_t *err);

/* ---- binary COPY (pg_events.c; pg_audit.c copies its call records with it too) ------ */

/* A COPY tuple of a call record at its longest: its texts (in TG_AUDIT_DATA_MAX), the
 * digests, day and names, and a length or 8 bytes a column. */
#define PG_AUDIT_ROW_MAX (TG_AUDIT_DATA_MAX + 1024)
char *pg_copy_be(char *o, uint64_t v, int bytes);     /* big-endian integer */
char *pg_copy_int8(char *o, int64_t v);               /* a bigint field */
char *pg_copy_null(char *o);                          /* a NULL field */
char *pg_copy_text(char *o, const char *f, size_t n); /* a text field, cleaned to UTF-8 */
/* Sends copy_sql (COPY ... FROM STDIN (FORMAT binary)), the header, n tuples made by
 * line(i) (each at most PG_AUDIT_ROW_MAX or an event's) and the trailer, through the
 * writer's buffer (s->ev: an append or ingest prepared it). 0, or the failure (the
 * transaction is in error then); *dup (may be NULL) = 1 on a unique violation. */
int pg_copy_rows(pg_store_t *s, const char *copy_sql, size_t n,
                 size_t (*line)(char *dst, const void *ud, size_t i), const void *ud, int *dup,
                 const char *what, tg_err_t *err);
extern const struct tg_store_admin_token_ops pg_admin_token_ops;

/* Frees s->ev (pg_close), and ends its second writer when it has one. */
void pg_events_free(pg_store_t *s);
/* A second connection to the server and database of s, as s was opened (the URL's options
 * too: libpq keeps them) and with its settings, not migrated again: pg_events.c appends
 * half of a large batch on it. TG_STORE_BUSY when the server refuses it. */
int pg_open_twin(pg_store_t *s, pg_store_t **out, tg_err_t *err);

/* ---- statements and transactions (postgres.c) ------------------------------------ */

/* Fills err from a failed result (or the connection when r is NULL), keeps its SQLSTATE in
 * s->state (so a caller of pg_exec can tell a unique violation, 23505, apart), and returns
 * TG_STORE_BUSY (the store cannot be used right now: connection lost, server shutting
 * down or out of space, a lock or statement timeout, a serialization failure or deadlock:
 * try again later) or -1. */
int pg_fail(pg_store_t *s, const PGresult *r, const char *what, tg_err_t *err);
/* The SQLSTATE of a failed result ("23505"), or "" */
const char *pg_state(const PGresult *r);

/* Runs statement q with parameters p (NULL: none), preparing it on first use. On success
 * returns 0 and *out (PQclear it; out may be NULL when the rows are not needed), else
 * TG_STORE_BUSY or -1 with err set. A lost connection is made again on the next call. */
int pg_exec(pg_store_t *s, const pg_sql_t *q, const pg_params_t *p, PGresult **out,
            const char *what, tg_err_t *err);
/* Runs one or more statements without parameters (DDL, SET, BEGIN ...). */
int pg_run(pg_store_t *s, const char *sql, const char *what, tg_err_t *err);
/* Rows changed by a command result (PQcmdTuples). */
int64_t pg_changes(const PGresult *r);

int pg_begin(pg_store_t *s, const char *what, tg_err_t *err);
void pg_rollback(pg_store_t *s); /* whatever is open; nothing if nothing is */
int pg_commit(pg_store_t *s, const char *what, tg_err_t *err); /* rolls back on failure */

/* The two versions running gateways poll. */
typedef enum { PG_AUTH, PG_POLICY } pg_version_t;

/* Runs statement q with p in its own transaction together with the bump of version v.
 * Returns 0, TG_STORE_NOTFOUND (no row changed, or a missing parent: foreign key),
 * TG_STORE_EXISTS (unique violation), TG_STORE_BUSY or -1. A change that fails bumps
 * nothing. */
int pg_mutate(pg_store_t *s, const pg_sql_t *q, const pg_params_t *p, pg_version_t v,
              const char *what, tg_err_t *err);
int pg_read_version(pg_store_t *s, pg_version_t v, const char *what, int64_t *out, tg_err_t *err);

/* ---- reading rows -------------------------------------------------------------------- */

/* Zeroes row (m->row_size bytes) and reads row i of r into it, column j of the result being
 * column j of the map. TG_COL_STR and TG_COL_BLOB_PTR point into r (and s->blob): valid
 * until r is cleared or the next row is read. */
void pg_read_row(pg_store_t *s, const PGresult *r, int i, const tg_rowmap_t *m, void *row);

/* Reads row i of r into its row type and hands it to k; returns what the callback returns
 * (0 to go on), or 0 for a row it skips. */
typedef int (*pg_emit_fn)(pg_store_t *s, const PGresult *r, int i, const sink_t *k);

/* Runs q with p and emits each row, one at a time (libpq's single-row mode: a list of any
 * length is never held whole in memory), until a callback returns nonzero, which is
 * returned as is. what names the list in an error. */
int pg_each_row(pg_store_t *s, const pg_sql_t *q, const pg_params_t *p, pg_emit_fn emit, sink_t k,
                const char *what, tg_err_t *err);
/* The same with SQL built by the caller, run unprepared (a report's, built per call). */
int pg_each_row_sql(pg_store_t *s, const char *sql, const pg_params_t *p, pg_emit_fn emit, sink_t k,
                    const char *what, tg_err_t *err);
/* The same with one parameter, the tenant filter ($1, NULL meaning every tenant), or none
 * when tenant_filter is 0. */
int pg_each_tenant_row(pg_store_t *s, const pg_sql_t *q, int tenant_filter, const char *tenant,
                       pg_emit_fn emit, sink_t k, const char *what, tg_err_t *err);

/* Text of column j of row i, NULL when SQL NULL. */
static inline const char *pg_val(const PGresult *r, int i, int j)
{
    return PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
}
int64_t pg_get_int64(const PGresult *r, int i, int j); /* NULL reads as 0 */

/* ---- text (inline: the append path runs it on every field) ---------------------- */

/* UTF-8 as PostgreSQL takes it: util/utf8.h (the audit trail cleans its records the same
 * way), under the names this backend's files use. */
static inline size_t pg_utf8_len(const unsigned char *p, size_t left)
{
    return tg_utf8_len(p, left);
}
static inline int pg_utf8_clean(char *dst, const char *src, size_t n)
{
    return tg_utf8_clean(dst, src, n);
}

#endif
