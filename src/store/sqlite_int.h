/* Private to the SQLite backend: what sqlite.c (open, close, migrations, the shared
 * helpers) and the files of each concern (sqlite_events.c, sqlite_tenants.c,
 * sqlite_policy.c, sqlite_prices.c, sqlite_alerts.c) share. Nothing outside
 * src/store/sqlite*.c includes it, except the store's unit test.
 *
 * Adding a table to the SQLite backend: a migration (migrations.c), the statements'
 * cache slots in the enum below; then, in the file of its concern, the statements' SQL
 * (sq_sql_t), a row mapping (tg_rowmap_t) in that file's list of maps, the functions, and
 * their place in the concern's table. */
#ifndef TG_STORE_SQLITE_INT_H
#define TG_STORE_SQLITE_INT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store/backend.h"
#include "store/evbatch.h"
#include "store/rowmap.h"
#include "store/walshm.h"

/* Cache slots: each statement is prepared once per connection, on first use, and kept
 * (SQLITE_PREPARE_PERSISTENT) until close. Grouped by the file that owns the SQL. */
enum {
    /* sqlite.c */
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_AUTH_BUMP,
    ST_AUTH_VERSION,
    ST_POLICY_BUMP,
    ST_POLICY_VERSION,
    /* sqlite_tenants.c */
    ST_TENANT_ADD,
    ST_TENANT_GET,
    ST_TENANT_LIST,
    ST_TENANT_STATUS,
    ST_KEY_ADD,
    ST_KEY_LIST,
    ST_KEY_REVOKE,
    ST_KEY_GET,
    ST_KEY_EXPIRE,
    ST_KEY_RESEAL,
    ST_AUTH_LOAD,
    /* sqlite_events.c */
    ST_EV_INSERT,
    ST_EV_INSERT_MULTI,
    ST_EV_MAX_ID,
    ST_EV_PEEK,
    ST_DAILY_UPSERT,
    ST_KEY_USED,
    ST_PURGE_EVENTS,
    ST_PURGE_DAILY,
    ST_SPEND,
    ST_INGEST_SEEN,
    ST_INGEST_SEEN_MULTI,
    ST_INGEST_SEEN_PLAIN,
    ST_INGEST_UNKNOWN,
    /* sqlite_policy.c */
    ST_LIMIT_SET,
    ST_LIMIT_RM,
    ST_LIMIT_LIST,
    ST_PAUSE_SET,
    ST_PAUSE_CLEAR,
    ST_PAUSE_LIST,
    ST_IP_ADD,
    ST_IP_RM,
    ST_IP_LIST,
    ST_TOOL_ADD,
    ST_TOOL_RM,
    ST_TOOL_LIST,
    /* sqlite_prices.c */
    ST_PRICE_SET,
    ST_PRICE_RM,
    ST_PRICE_RM_ALL,
    ST_PRICE_LIST,
    ST_BUDGET_SET,
    ST_BUDGET_RM,
    ST_BUDGET_LIST,
    /* sqlite_alerts.c */
    ST_ALERT_ADD,
    ST_ALERT_LIST,
    /* sqlite_alarms.c */
    ST_ALARM_PUT,
    ST_ALARM_EVENT_ADD,
    ST_ALARM_LIST,
    ST_ALARM_EVENTS,
    ST_ALARM_EVENTS_PURGE,
    /* sqlite_outbox.c */
    ST_OUTBOX_ADD,
    ST_OUTBOX_DELIVERY_ADD,
    ST_OUTBOX_DUE,
    ST_OUTBOX_CLAIM,
    ST_OUTBOX_SET,
    ST_OUTBOX_DEFER,
    ST_OUTBOX_NEXT,
    ST_OUTBOX_NOTIFIERS,
    ST_OUTBOX_LIST,
    ST_OUTBOX_PURGE,
    ST_OUTBOX_SEALED_EACH,
    ST_OUTBOX_RESEAL,
    /* sqlite_dash.c */
    ST_DASH_TOTALS,
    ST_DASH_P95,
    ST_DASH_SERIES,
    ST_DASH_REJECTIONS,
    /* sqlite_invoices.c */
    ST_PLAN_INSERT,
    ST_PLAN_RM,
    ST_PLAN_RM_ALL,
    ST_PLAN_LIST,
    ST_PLAN_GET,
    ST_PLAN_METER_INSERT,
    ST_PLAN_METERS,
    ST_PLAN_TIER_INSERT,
    ST_PLAN_TIERS,
    ST_TENANT_PLAN_SET,
    ST_TENANT_PLAN_RM,
    ST_TENANT_PLAN_LIST,
    ST_PLAN_USAGE,
    ST_INVOICE_INSERT,
    ST_INVOICE_LINE_INSERT,
    ST_INVOICE_METER_PUT,
    ST_INVOICE_GET,
    ST_INVOICE_LINES,
    ST_INVOICE_LIST,
    ST_INVOICE_BILLED,
    ST_EVENT_RANGE,
    ST_EVENT_RANGE_ALL,
    /* sqlite_sql.c */
    ST_EV_DELETE_ID,
    /* sqlite_audit.c */
    ST_AUDIT_HEAD,
    ST_AUDIT_INSERT,
    ST_AUDIT_INSERT_MULTI,
    ST_AUDIT_HEAD_SET,
    ST_AUDIT_RANGE,
    ST_AUDIT_FIND,
    ST_AUDIT_ERASE_SEL,
    ST_AUDIT_ERASE_SET,
    ST_AUDIT_ERASE_EVENTS,
    ST_AUDIT_ERASE_KEYS,
    ST_AUDIT_PURGE,
    ST_AUDIT_IDS,
    ST_AUDIT_DAY_FROM,
    ST_AUDIT_BODY_PUT,
    ST_AUDIT_BODY_GET,
    ST_AUDIT_BODY_EACH,
    ST_AUDIT_BODY_RESEAL,
    ST_AUDIT_BODY_ERASE,
    ST_AUDIT_BODY_PURGE,
    /* sqlite_admintok.c */
    ST_ADMIN_TOKEN_ADD,
    ST_ADMIN_TOKEN_LIST,
    ST_ADMIN_TOKEN_REVOKE,
    ST_ADMIN_TOKEN_TOUCH,
    ST_COUNT
};

/* ---- row mappings (store/rowmap.h) ------------------------------------------------- */

/* Zeroes row (m->row_size bytes) and reads the current row of st into it. */
void sq_read_row(sqlite3_stmt *st, const tg_rowmap_t *m, void *row);

/* Each concern's maps, NULL-terminated, defined (static) next to the functions that
 * read their rows; and the list of those lists (sqlite.c), NULL-terminated: what the
 * schema test walks. */
extern const tg_rowmap_t *const sq_tenant_maps[],
    *const sq_event_maps[], *const sq_policy_maps[], *const sq_price_maps[], *const sq_alert_maps[];
extern const tg_rowmap_t *const sq_alarm_maps[];
extern const tg_rowmap_t *const sq_outbox_maps[];
extern const tg_rowmap_t *const *const sq_maps[];

/* ---- statements ---------------------------------------------------------------------- */

/* One cached statement: its slot and its SQL. With select, the SQL is "SELECT " and the
 * map's column list, then sql (from FROM on). With build, a function builds the SQL
 * (malloc'd, freed once prepared) for a statement too repetitive to write out. */
typedef struct sq_sql {
    int slot;
    const char *sql;
    const tg_rowmap_t *select;
    char *(*build)(void);
} sq_sql_t;

/* One connection. Not shared between threads (store.h). */
typedef struct sq_store {
    tg_store_t base; /* first: a tg_store_t * is an sq_store_t * */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    /* append() scratch, kept between calls so a steady writer allocates once:
     * groups (at most one per event) and an open-addressing index over them,
     * and the fast path's events sorted by id, with a done flag per event. */
    agg_t *aggs;
    size_t aggs_cap;
    uint32_t *slots;  /* 0 = empty, else index into aggs + 1 */
    size_t slots_cap; /* power of two, >= 2 * aggs_cap */
    fast_ev_t *fast;
    unsigned char *done;  /* per event: inserted by the fast path */
    int64_t *stored;      /* per event: the id it was inserted under; 0 = not (a replay) */
    int bulk;             /* ingest() has enlarged this connection's page cache */
    unsigned char *isnew; /* ingest() scratch: which of a batch's records are new */
    size_t isnew_cap;
    unsigned seen_exact;         /* ingest(): batches left to mark with RETURNING at once */
    struct sq_audit_rows *audit; /* sq_audit_calls() scratch: records waiting for one
                                    multi-row INSERT (sqlite_audit.c), made on first use */
    /* The -shm this connection mapped (walshm.h): checked before every use; once it is
     * lost the connection is never touched again, not even to close it. */
    tg_walshm_t shm;
    struct sq_store *abandoned_next; /* in `abandoned` once closed with its index lost */
    struct sq_ckpt *ckpt; /* its WAL checkpoints' thread (sqlite_ckpt.c); NULL: SQLite's own */
    /* Read-only handles: what the authorizer refused last (sqlite_sql.c), for the error
     * line; "" when nothing was. */
    char denied[96];
} sq_store_t;

/* WAL checkpoints on a thread of their own (sqlite_ckpt.c). A round once SQ_CKPT_PAGES
 * frames of WAL wait to be copied (16 MB, as wal_autocheckpoint was: index leaves rewritten
 * by every batch are copied once per round rather than at every commit), then, while the WAL
 * is that long, one for what came since at most every SQ_CKPT_GAP_US; past
 * SQ_CKPT_FORCE_PAGES the writer checkpoints itself, which bounds the WAL. */
#define SQ_CKPT_PAGES       4000
#define SQ_CKPT_GAP_US      20000
#define SQ_CKPT_FORCE_PAGES (8 * SQ_CKPT_PAGES)
typedef struct sq_ckpt sq_ckpt_t;
/* Starts s's checkpointer: a thread and a second connection; s's connection then runs no
 * checkpoint of its own until the WAL passes SQ_CKPT_FORCE_PAGES (or the thread is gone).
 * 0 also for an in-memory store (no WAL) and when already started; -1 with err. */
int sq_ckpt_start(sq_store_t *s, tg_err_t *err);
/* Stops and joins it; s's connection back to wal_autocheckpoint SQ_CKPT_PAGES. */
void sq_ckpt_stop(sq_store_t *s);
/* Waits until no round is asked for or running (tests). */
void sq_ckpt_settle(sq_store_t *s);
/* The clock the gap is measured on (tg_mono_us unless a test gives its own). */
void sq_ckpt_set_clock(sq_store_t *s, int64_t (*now)(void));
typedef struct sq_ckpt_stats {
    long rounds;       /* rounds the thread ran */
    long by_writer;    /* checkpoints the writer's connection ran itself */
    int dead;          /* the thread is gone (its WAL index lost) */
    int failing;       /* its last round failed */
    int frames;        /* the WAL's frames at the last commit */
    unsigned restarts; /* times the WAL started again from its beginning */
} sq_ckpt_stats_t;
void sq_ckpt_stats(sq_store_t *s, sq_ckpt_stats_t *st);

/* The tables of each concern, assembled into the handle by tg_sqlite_open. */
extern const struct tg_store_event_ops sq_event_ops;
extern const struct tg_store_tenant_ops sq_tenant_ops;
extern const struct tg_store_policy_ops sq_policy_ops;
extern const struct tg_store_price_ops sq_price_ops;
extern const struct tg_store_alert_ops sq_alert_ops;
extern const struct tg_store_alarm_ops sq_alarm_ops;
/* Deletes alarm_events older than before_us (sqlite_alarms.c), in one transaction; adds the
 * number deleted to *deleted. Part of the retention purge (tg_store_purge). */
int sq_alarm_events_purge(sq_store_t *s, int64_t before_us, int64_t *deleted, tg_err_t *err);
extern const struct tg_store_outbox_ops sq_outbox_ops;
extern const struct tg_store_dash_ops sq_dash_ops;
extern const tg_rowmap_t *const sq_dash_maps[];
extern const struct tg_store_invoice_ops sq_invoice_ops;
extern const tg_rowmap_t *const sq_invoice_maps[];
extern const struct tg_store_sql_ops sq_sql_ops;
extern const struct tg_store_audit_ops sq_audit_ops;
/* Inside the caller's transaction (the writer's append): a call record for each audited
 * event of evs (tg_audit_from_event) that this transaction inserted (stored[i], the id it
 * was inserted under; 0 = not inserted: a replay, which adds no record), chained
 * (sqlite_audit.c). */
int sq_audit_calls(sq_store_t *s, const ev_run_t *evs, const int64_t *stored, tg_err_t *err);
extern const struct tg_store_admin_token_ops sq_admin_token_ops;
extern const tg_rowmap_t *const sq_admin_token_maps[];
/* Installs the read-only authorizer on s (sqlite_sql.c). */
void sq_sql_guard(sq_store_t *s);
/* The newest migration's version (sqlite.c). */
int sq_schema_latest(void);

/* ---- statements and transactions (sqlite.c) -------------------------------------- */

/* Fills err from the connection and returns TG_STORE_BUSY (the store cannot be written
 * right now: the recorder spools and retries) or -1. */
int sq_fail(sq_store_t *s, int rc, const char *what, tg_err_t *err);
/* The cached statement of q, prepared on first use; NULL with err set on failure. Every
 * use of the connection starts here (or in sq_exec() and the usage report), so this is
 * where the WAL index is checked before SQLite touches its mapping. */
sqlite3_stmt *sq_stmt(sq_store_t *s, const sq_sql_t *q, tg_err_t *err);
/* head, then rows rows of cols parameters ("(?,?),(?,?)"), then tail: the SQL of a multi-row
 * INSERT, malloc'd (for sq_sql_t's build); NULL when out of memory. */
char *sq_rows_sql(const char *head, int cols, int rows, const char *tail);
/* Steps a statement that returns no rows we need, then resets it (a statement left
 * un-reset would keep its read transaction, and its snapshot, open). SQLite's code.
 * Inline, like sq_bind_field: the writer calls both for every event it appends. */
static inline int sq_run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}
int sq_begin(sq_store_t *s, const char *what, tg_err_t *err); /* BEGIN IMMEDIATE */
/* Runs SQL without parameters (a PRAGMA, DDL): 0, or TG_STORE_BUSY / -1. */
int sq_exec(sq_store_t *s, const char *sql, const char *what, tg_err_t *err);
void sq_rollback(sq_store_t *s); /* whatever is open; nothing if nothing is */
int sq_commit(sq_store_t *s, const char *what, tg_err_t *err); /* rolls back on failure */

/* The two versions running gateways poll. */
typedef enum { SQ_AUTH, SQ_POLICY } sq_version_t;

/* Runs one bound statement in its own transaction together with the bump of version v.
 * Returns 0, TG_STORE_NOTFOUND (no row changed, or a missing parent), TG_STORE_EXISTS
 * (duplicate), TG_STORE_BUSY or -1. A change that fails bumps nothing. */
int sq_mutate(sq_store_t *s, sqlite3_stmt *st, sq_version_t v, const char *what, tg_err_t *err);
int sq_read_version(sq_store_t *s, sq_version_t v, const char *what, int64_t *out, tg_err_t *err);

/* ---- binding and reading --------------------------------------------------------- */

/* Binds a fixed-size field; strnlen so a field without its NUL cannot make SQLite read
 * past it. An empty optional field is told by its first byte: most of an event's optional
 * fields are empty, and a strnlen call each was 4% of the CPU of `tollgate ingest`. */
static inline void sq_bind_field(sqlite3_stmt *st, int i, const char *f, size_t cap,
                                 int null_if_empty)
{
    if (null_if_empty && (cap == 0 || f[0] == '\0')) {
        sqlite3_bind_null(st, i);
        return;
    }
    sqlite3_bind_text(st, i, f, (int)strnlen(f, cap), SQLITE_STATIC);
}
#define BIND_ROW(st, i, row, field) sq_bind_field((st), (i), (row)->field, sizeof(row)->field, 0)

/* Reads the current row of st into its row type and hands it to k; returns what the
 * callback returns (0 to go on), or 0 for a row it skips. */
typedef int (*sq_emit_fn)(sqlite3_stmt *st, const sink_t *k);

/* Steps statement q and emits each row until a callback returns nonzero, which is
 * returned as is. A statement with a parameter has ?1 for the tenant filter: bound to
 * tenant, NULL meaning every tenant. what names the list in an error. */
int sq_each_row(sq_store_t *s, const sq_sql_t *q, const char *tenant, sq_emit_fn emit, sink_t k,
                const char *what, tg_err_t *err);
/* The same for a statement its caller bound: steps st, each row to emit, then resets it. */
int sq_step_each(sq_store_t *s, sqlite3_stmt *st, sq_emit_fn emit, sink_t k, const char *what,
                 tg_err_t *err);

#endif
