/* The audit record and its hash chain (docs/audit.md, "Chain format"): a value type below
 * the store, which links records as it appends them (in the same transaction as the chain
 * head), and the verifier, which the CLI feeds the stored records in id order.
 *
 * A record's hash is SHA-256 over its canonical form (tg_audit_canonical): its fields in a
 * fixed order, prev_hash last, so each record commits to the one before it; in format 2
 * (every record appended since migration 16) each field is length-prefixed, in format 1
 * (the records before, which keep it) they form a compact JSON array. The erasable
 * fields (before, after, client_ip, path) enter the canonical form as the SHA-256 of their value,
 * never the value: erasing one replaces the stored value with "erased:sha256:HEX" of that same
 * hash, and the canonical form, hence the chain, is unchanged. The record's id is not hashed (day
 * and seq are): the store numbers records 1, 2, 3 ... and the verifier checks that order
 * separately, so it can tell a deleted record (a gap) from an edited one. */
#ifndef TG_TYPES_AUDIT_H
#define TG_TYPES_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "types/bodies.h"
#include "types/event.h"

#define TG_AUDIT_FORMAT     "tg-audit-1" /* first element of format 1's canonical form */
#define TG_AUDIT_FORMAT_V2  "tg-audit-2" /* first field of format 2's */
#define TG_AUDIT_FORMAT_NOW 2            /* what tg_audit_link gives a record without one */
#define TG_AUDIT_ERASED     "erased:sha256:"
#define TG_AUDIT_HEX        65 /* 64 hex digits and the NUL */

/* One record. Strings belong to the caller; NULL is absent (stored as NULL). */
typedef struct tg_audit_rec {
    int64_t id;                 /* chain position from 1; set by tg_audit_link */
    int format;                 /* of its canonical form: 1 (JSON, the records written before
                                 * migration 16) or 2 (length-prefixed); tg_audit_link sets
                                 * TG_AUDIT_FORMAT_NOW when 0 */
    char day[11];               /* UTC day of the chain holding it; set by tg_audit_link */
    int64_t seq;                /* 1, 2, ... within day; set by tg_audit_link */
    int64_t ts_us;              /* when it happened (the writer's clock) */
    const char *kind;           /* "admin" | "call" */
    const char *actor;          /* admin: who ("alice", later "admin-token:ID"); call: the key id */
    const char *action;         /* admin: "tenant.disable"...; call: "call" */
    const char *object;         /* admin: what it acted on; call: the route */
    const char *tenant;         /* whose data it is ("" none): what `tenant erase` selects */
    int64_t event_id;           /* call: usage_events.id; 0 = none */
    const char *data;           /* JSON text hashed as is (call: model, tokens, cost ...) */
    const char *before, *after; /* erasable: rows as JSON (admin) */
    const char *client_ip, *path; /* erasable (call) */
    char prev_hash[TG_AUDIT_HEX];
    char hash[TG_AUDIT_HEX];
} tg_audit_rec_t;

/* The last record of the chain (id 0 and 64 zeros before the first). */
typedef struct tg_audit_head {
    int64_t last_id;
    char last_day[11]; /* "" before the first */
    int64_t last_seq;
    char last_hash[TG_AUDIT_HEX];
} tg_audit_head_t;

void tg_audit_head_init(tg_audit_head_t *h);

/* Places rec after head: format (TG_AUDIT_FORMAT_NOW unless set), id, day (its ts_us's UTC day, or
 * the head's when that is later: days never go back, whichever process's clock wrote the record),
 * seq, prev_hash and hash; then moves head to rec. 0, or -1 when out of memory. */
int tg_audit_link(tg_audit_head_t *head, tg_audit_rec_t *rec);

/* The canonical form of rec's format (malloc'd, *len bytes, NUL-terminated; format 2's holds
 * NUL bytes), or NULL when out of memory or its format is neither 1 nor 2. */
char *tg_audit_canonical(const tg_audit_rec_t *rec, size_t *len);
/* hex = SHA-256 of the canonical form. 0, or -1 (out of memory, an unknown format). */
int tg_audit_hash(const tg_audit_rec_t *rec, char hex[TG_AUDIT_HEX]);

/* The erased form of value v: "erased:sha256:" + hex SHA-256 of v (v itself when it is
 * erased already). out holds at least 80 bytes. */
void tg_audit_erased(const char *v, char out[80]);

/* Room for a call record's data and its text fields: the data's fields at their longest,
 * each byte a control character escaped as \u00XX (6 bytes), and its numbers (5 * 128 * 6
 * + 512), the bodies' hashes (256), then the key id, route, tenant, client address and path
 * (464). A smaller buffer would let a client's model name fail the writer's batch. */
#define TG_AUDIT_DATA_MAX 5120

/* 1 when ev is a call the audit trail records: its model, tool or MCP method is set. */
static inline int tg_audit_is_call(const tg_event_t *ev)
{
    return ev->model[0] || ev->tool[0] || ev->rpc_method[0];
}

/* 1 when the call record of ev, stored under event id stored_id, gets its sealed bodies
 * (audit.bodies: encrypt): they are bound to the event's own id (types/bodies.h), so an event
 * stored under another id (its own was taken) keeps none. */
static inline int tg_audit_body_of(const tg_event_t *ev, int64_t stored_id)
{
    return ev->bodies_state == TG_BODIES_SEALED && ev->bodies && ev->bodies->sealed &&
           stored_id == ev->id;
}

/* A call record's fields from a usage event whose model, tool or MCP method is set (the
 * calls of AI and MCP routes that got as far as their body): 1 and rec filled (its strings
 * point into buf[cap]: the data's JSON, and the event's text fields with every byte that
 * is not UTF-8 made '?', as the PostgreSQL store takes them and the same on SQLite, so a
 * record hashes the same in either and after a store copy), or 0 for an event that is not
 * audited; -1 only when out of memory or cap < TG_AUDIT_DATA_MAX. */
int tg_audit_from_event(const tg_event_t *ev, tg_audit_rec_t *rec, char *data, size_t cap);

/* The chain's days never go back (tg_audit_link), so the records of a day range are an id
 * range, found by binary search on ids instead of an index on day, which every call record
 * paid for on the writer's path (bench/RESULTS.md). day_from(x) gives the day of the first
 * stored record whose id is >= x (0, or -1 on error); lo..hi are the smallest and largest
 * stored ids. *out = the smallest x in lo..hi+1 from which every record's day is >= day
 * (after = 0) or > day (after = 1): records [first bound, second bound) are a range's.
 * 0, or -1 when day_from failed. */
int tg_audit_day_bound(int64_t lo, int64_t hi, const char *day, int after,
                       int (*day_from)(int64_t x, char day[11], void *ud), void *ud, int64_t *out);

/* ---- verification --------------------------------------------------------------------- */

typedef enum {
    TG_AUDIT_OK = 0,
    TG_AUDIT_EDITED,    /* its hash is not that of its content */
    TG_AUDIT_DELETED,   /* records missing before it */
    TG_AUDIT_INSERTED,  /* not part of the chain */
    TG_AUDIT_REORDERED, /* its place is not where the chain put it */
    TG_AUDIT_HEAD,      /* the chain head names another last record */
} tg_audit_fault_t;

/* Fed the records in id order; stops at the first fault. Where a record does not follow
 * the one before it, find (the caller's lookup of a stored record by hash: its id, 0 when
 * none, -1 on error) tells a reordered record (it follows a later one) from an inserted one
 * (it follows an earlier one) and from a deletion (it follows none that is stored). */
typedef struct tg_audit_verifier {
    int64_t (*find)(const char *hash, void *ud);
    void *ud;
    int64_t n;                 /* records checked */
    int64_t first_id, last_id; /* of the records checked */
    char first_day[11], last_day[11];
    int64_t last_seq;
    char anchor[TG_AUDIT_HEX]; /* the first record's prev_hash: where the check starts */
    char last_hash[TG_AUDIT_HEX];
    tg_audit_fault_t fault;
    int64_t fault_id; /* the record found wrong */
    char why[240];
} tg_audit_verifier_t;

void tg_audit_verify_init(tg_audit_verifier_t *v, int64_t (*find)(const char *, void *), void *ud);
/* The next record: TG_AUDIT_OK or the fault found (also in v->fault, v->why). -1 when
 * out of memory. */
int tg_audit_verify_next(tg_audit_verifier_t *v, const tg_audit_rec_t *rec);
/* After the last record: against the store's head (NULL to skip, as with --to). */
int tg_audit_verify_end(tg_audit_verifier_t *v, const tg_audit_head_t *head);
const char *tg_audit_fault_name(tg_audit_fault_t f);

#endif
