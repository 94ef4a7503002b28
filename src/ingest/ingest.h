/* Ingest: existing access logs (CloudFront standard logs, API Gateway JSON access logs,
 * common and combined log format, tollgate's own JSON access log) turned into usage
 * events, so every report, budget and invoice sees traffic tollgate did not proxy.
 *
 * Two layers, one header:
 *   - the parsers (cloudfront.c, apigw.c, clf.c, jsonl.c; helpers in field.c) turn one
 *     line into zero or more records (tg_ingest_rec_t: an event's fields, the record's id
 *     in its log, the raw API key it carried) or say why the line is malformed. They touch
 *     no store and read no clock.
 *   - the driver (ingest.c) reads files (plain, .gz, or "-" for stdin) line by line,
 *     resolves each record's tenant (a raw key is hashed and matched against api_keys,
 *     never stored), prices it, and stores batches with tg_store_ingest, which skips a
 *     record already stored (identity: SHA-256 of source and record id).
 * Formats and field mappings are documented for users in docs/ingest.md. */
#ifndef TG_INGEST_INGEST_H
#define TG_INGEST_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "meter/price.h"
#include "store/store.h"
#include "types/event.h"
#include "util/err.h"

typedef enum {
    TG_INGEST_CLOUDFRONT = 0,
    TG_INGEST_APIGW,
    TG_INGEST_CLF,
    TG_INGEST_COMBINED,
    TG_INGEST_JSONL,
} tg_ingest_format_t;

/* "cloudfront", "apigw-json", "clf", "combined", "jsonl" -> *out; -1 if unknown. */
int tg_ingest_format_parse(const char *name, tg_ingest_format_t *out);
/* usage_events.source of a format's records: "cloudfront", "apigw", "clf" (common and
 * combined alike: the same line read either way is the same record), "accesslog". */
const char *tg_ingest_source(tg_ingest_format_t f);

#define TG_INGEST_KEY_MAX  256       /* a longer key is malformed */
#define TG_INGEST_LINE_MAX (1 << 20) /* a longer line is malformed (and skipped whole) */
/* A record's byte counts and jsonl count at most this (1 TiB; CloudFront serves objects of
 * at most 50 GB): past it a line is malformed, so that no hostile log can push a month's
 * sums past 64 bits, which saturated usage_daily and failed every invoice of the month. */
#define TG_INGEST_BYTES_MAX (1LL << 40)

/* One record as a parser read it. */
typedef struct tg_ingest_rec {
    /* Filled as far as the log says: ts_us, method, path (never the query), status,
     * latency_us, bytes_in/out, cache, client_ip, request_id; tenant when the log names
     * it (apigw's tenant field, clf's user with --tenant-field user, jsonl); key_id
     * (apigw's apiKeyId, jsonl); route, outcome and reason (jsonl). Tokens unknown. */
    tg_event_t ev;
    int has_outcome; /* jsonl: ev.outcome is the logged one; else the driver sets it */
    /* The record's id in its log (CloudFront's x-edge-request-id, API Gateway's
     * requestId, tollgate's request_id); NULL = the record's bytes are its identity. */
    const char *rid;
    size_t rid_len;
    const char *raw; /* the record's bytes (the line, or one JSON object of it) */
    size_t raw_len;
    char key[TG_INGEST_KEY_MAX]; /* the raw API key the record carried, decoded; "" = none */
    size_t key_len;
} tg_ingest_rec_t;

/* Receives each record of a line; a nonzero return stops the parse and is returned. */
typedef int (*tg_ingest_emit_fn)(void *ud, tg_ingest_rec_t *rec);

/* CloudFront fields the parser reads, located by the #Fields line. */
enum {
    CF_DATE,
    CF_TIME,
    CF_SC_BYTES,
    CF_C_IP,
    CF_METHOD,
    CF_URI_STEM,
    CF_STATUS,
    CF_QUERY,
    CF_RESULT_TYPE,
    CF_REQUEST_ID,
    CF_CS_BYTES,
    CF_TIME_TAKEN,
    CF_NFIELDS
};

typedef struct tg_ingest_parser {
    tg_ingest_format_t format;
    const char *key_field;    /* query parameter carrying the key (cloudfront: cf_api_key,
                                 clf/combined: api_key); apigw: JSON field with a raw key
                                 (NULL = none) */
    const char *tenant_field; /* apigw: JSON field (tenant_id); clf/combined: "user" = the
                                 %u field is the tenant id (NULL = the key decides) */
    int cf_col[CF_NFIELDS];   /* column of each field, -1 = absent */
    int cf_ncols;             /* columns a record has */
} tg_ingest_parser_t;

/* key_field / tenant_field NULL take the format's defaults (above); the strings must
 * outlive the parser. */
void tg_ingest_parser_init(tg_ingest_parser_t *p, tg_ingest_format_t format, const char *key_field,
                           const char *tenant_field);
/* A new file: CloudFront's layout goes back to the standard one until a #Fields line. */
void tg_ingest_parser_reset(tg_ingest_parser_t *p);
/* Parses one line (no newline). 0: read (comments and blank lines emit nothing); -1:
 * malformed, why (cap bytes) says why; or emit's nonzero return. */
int tg_ingest_parse(tg_ingest_parser_t *p, const char *line, size_t len, tg_ingest_emit_fn emit,
                    void *ud, char *why, size_t cap);

/* ---- the driver ------------------------------------------------------------------ */

typedef struct tg_ingest_stats {
    uint64_t files;      /* files read to their end */
    uint64_t lines;      /* lines read, comments and blank ones included */
    uint64_t records;    /* records parsed */
    uint64_t stored;     /* records stored as new events */
    uint64_t duplicates; /* records stored before (this run or an earlier one) */
    uint64_t malformed;  /* lines refused */
    uint64_t unknown;    /* records whose key matched no api_keys row */
    uint64_t mismatched; /* records whose tenant field names another tenant than their key's */
    uint64_t bytes;      /* bytes read from the files (compressed size for .gz) */
} tg_ingest_stats_t;

typedef struct tg_ingest_opts {
    tg_ingest_format_t format;
    const char *key_field, *tenant_field; /* as tg_ingest_parser_init */
    /* Called for each malformed line: file ("-" = stdin), line number (from 1), reason. */
    void (*malformed)(void *ud, const char *file, uint64_t line, const char *why);
    /* Called every few thousand lines and at each file's end: what is done so far, the
     * current file's name, its bytes read and size (0 = unknown: stdin, a pipe). */
    void (*progress)(void *ud, const tg_ingest_stats_t *st, const char *file, uint64_t done,
                     uint64_t size);
    void *ud;
} tg_ingest_opts_t;

typedef struct tg_ingest tg_ingest_t;

/* store NULL: parse only (nothing resolved, priced or stored: --strict's first pass and
 * the benchmark). pb (may be NULL: everything costs 0) prices billable records. The
 * store's api_keys are read once, here. */
int tg_ingest_new(tg_store_t *store, tg_pricebook_t *pb, const tg_ingest_opts_t *opts,
                  tg_ingest_t **out, tg_err_t *err);
/* Reads one file ("-" = stdin) to its end. Malformed lines are reported and skipped;
 * -1 when the file cannot be read, TG_INGEST_STORE_FAILED when the store refused a batch
 * (the batches stored before stay, the refused one is kept for the next try: ingesting
 * again completes the run without counting anything twice). */
#define TG_INGEST_STORE_FAILED (-2)
int tg_ingest_file(tg_ingest_t *in, const char *path, tg_err_t *err);
/* Stores what is still batched. */
int tg_ingest_flush(tg_ingest_t *in, tg_err_t *err);
const tg_ingest_stats_t *tg_ingest_stats(const tg_ingest_t *in);
void tg_ingest_free(tg_ingest_t *in);

/* ---- helpers shared by the parsers (field.c) --------------------------------------- */

/* Decodes %XX escapes of s[0..n) into out (cap bytes, NUL-terminated); other bytes are
 * copied, '+' included. Returns the length, or -1 when it does not fit or an escape is
 * broken. In place is allowed (out == s). */
long tg_ingest__pct_decode(const char *s, size_t n, char *out, size_t cap);
/* The value of the parameter named name in the query q[0..n) ("a=1&b=2"), the name
 * compared after decoding: *val and *vlen point into q, undecoded (the first one's). 1
 * found, 0 not, 2 found more than once. */
int tg_ingest__query_param(const char *q, size_t n, const char *name, const char **val,
                           size_t *vlen);
/* Digits only, at most 18 of them. 0 and *out, or -1. */
int tg_ingest__uint(const char *s, size_t n, int64_t *out);
/* The key from parameter name of query q[0..n) into rec (tg_ingest__set_key), none when it
 * is absent; -1 and why when it is there twice or bad. */
int tg_ingest__key_param(tg_ingest_rec_t *rec, const char *q, size_t n, const char *name,
                         int layers, char *why, size_t cap);
/* "12.345" seconds (digits, an optional fraction) as microseconds. 0, or -1. */
int tg_ingest__seconds_us(const char *s, size_t n, int64_t *out);
/* Unix microseconds of a UTC civil time; -1 when a field is out of range. */
int64_t tg_ingest__utc_us(int year, int mon, int day, int hour, int min, int sec);
/* "10/Oct/2000:13:55:36 -0700" (CLF and API Gateway's requestTime) as Unix microseconds
 * (UTC). 0, or -1. */
int tg_ingest__clf_time(const char *s, size_t n, int64_t *out);
/* Sets rec->key from a query value as the log holds it, decoded `layers` times (CloudFront
 * encodes query values once more). 0, or -1 with why set. */
int tg_ingest__set_key(tg_ingest_rec_t *rec, const char *v, size_t n, int layers, char *why,
                       size_t cap);

int tg_ingest__cloudfront(tg_ingest_parser_t *p, const char *line, size_t len,
                          tg_ingest_emit_fn emit, void *ud, char *why, size_t cap);
int tg_ingest__clf(tg_ingest_parser_t *p, const char *line, size_t len, tg_ingest_emit_fn emit,
                   void *ud, char *why, size_t cap);
int tg_ingest__apigw(tg_ingest_parser_t *p, const char *line, size_t len, tg_ingest_emit_fn emit,
                     void *ud, char *why, size_t cap);
int tg_ingest__jsonl(tg_ingest_parser_t *p, const char *line, size_t len, tg_ingest_emit_fn emit,
                     void *ud, char *why, size_t cap);

#endif
