/* The usage event: one per request, accepted or rejected. Everything else
 * (daily aggregates, access log, reports) is derived from these.
 *
 * The struct is fixed-size on purpose: the recorder's queue is a ring of them,
 * so recording a request allocates nothing. Strings longer than their field
 * are truncated (path keeps its first 255 bytes). */
#ifndef TG_TYPES_EVENT_H
#define TG_TYPES_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "util/sizes.h"

typedef enum {
    TG_OUTCOME_BILLABLE = 0, /* upstream answered 2xx */
    TG_OUTCOME_FAILED = 1,   /* reached (or tried) the upstream, not 2xx */
    TG_OUTCOME_REJECTED = 2, /* refused by tollgate before any upstream work */
} tg_outcome_t;

const char *tg_outcome_name(tg_outcome_t o); /* "billable", "failed", "rejected" */

#define TG_TOKENS_UNKNOWN (-1)
/* The largest token count taken from an answer; a larger one is read as this (a hundred
 * thousand times the largest context window offered today), so that sums of counts and
 * their prices stay far inside int64 whatever an upstream claims, and a claim that large
 * is billed at the most, never as nothing. */
#define TG_TOKENS_MAX 1000000000000LL

typedef struct tg_event {
    int64_t id;         /* time-ordered, unique: see tg_event_new_id() */
    int64_t ts_us;      /* wall clock at request start, Unix microseconds */
    int64_t latency_us; /* monotonic, request start to last byte sent */
    /* monotonic, the upstream call: from its first attempt's start (FORWARD) to the end of
     * its transfer (the answer's last byte received, an error, or tollgate giving up on it:
     * the client left, a body over the limit); retries after a failed connect included.
     * 0 = no upstream call. Not stored (the store's event columns are listed in
     * store/sqlite_events.c): metrics only. */
    int64_t upstream_latency_us;
    int64_t bytes_in;  /* request body bytes received from the client */
    int64_t bytes_out; /* response body bytes sent to the client */
    /* Token counts as the provider reported them (see meter/usage.h), TG_TOKENS_UNKNOWN
     * when not known. OpenAI's tokens_in includes tokens_cached; Anthropic's excludes both
     * tokens_cached (cache reads) and tokens_cache_write (cache creation). */
    int64_t tokens_in, tokens_out, tokens_cached, tokens_cache_write;
    int64_t cost_micros; /* integer micro-USD */
    /* Requests this event stands for: 0 or 1 = one request (0 so that a zeroed event is
     * one); N > 1 only in an aggregate of refusals without a valid key (reason
     * TG_REASON_FLOOD, see meter/flood.h), which stands for N of them. */
    int64_t count;
    int32_t status;              /* HTTP status sent to the client */
    int32_t outcome;             /* tg_outcome_t */
    char tenant[TG_TENANT_SIZE]; /* "" when unauthenticated */
    char key_id[32];
    char route[64];
    char method[16];
    char path[256];
    char reason[48]; /* why rejected or failed: "no_route", "unauthorized", ... */
    char model[128];
    char tool[128];
    char rpc_method[48]; /* MCP: the JSON-RPC method (first request of a batch) */
    char price_flag[16]; /* "" = priced by its own price, or nothing to price;
                            "fallback" = an unknown model priced by the fallback price;
                            "unpriced" = no price applied and no fallback configured;
                            "tokens_unknown" = an AI response whose usage could not be read;
                            "coding_unknown", "decode_error", "decode_cap" = a compressed
                            answer not decoded whole (meter/decode.h), set by the gateway in
                            place of "" or "tokens_unknown" */
    char cache[16];
    char client_ip[48];
    char request_id[64];
    char upstream[128]; /* the target URL the request went to */
    /* Where the event came from: "" (stored as 'gateway') for traffic tollgate proxied;
     * "cloudfront", "apigw", "clf", "accesslog" for records of an access log brought in by
     * `tollgate ingest` (src/ingest/). */
    char source[16];
    /* How the tenant authenticated (issue 14): "api_key", "jwt", or "" when it did not get
     * that far (no credential). subject: a JWT's sub claim, truncated; "" otherwise. */
    char auth[8];
    char subject[128];
    /* audit.bodies: hash (docs/audit.md, "Bodies"): the SHA-256 of the request body as the
     * client sent it and of the answer body in its identity form, binary (the writer makes
     * them hex); body_hashed says which are set (TG_BODY_IN, TG_BODY_OUT), body_out how
     * much of the answer the hash covers (tg_body_out_t). All zero with bodies: none. */
    unsigned char body_sha_in[32], body_sha_out[32];
    uint8_t body_hashed;
    uint8_t body_out;
    /* audit.bodies: encrypt: what became of the bodies (tg_bodies_state_t, the call record's
     * data.bodies) and, on their way to the store, the bodies themselves: owned by whoever
     * holds the event from the push on (the recorder), freed once (types/bodies.h). Never
     * written to the spool: spooled events drop theirs (TG_BODIES_DROPPED_SPOOLED). */
    uint8_t bodies_state;
    struct tg_bodies *bodies;
} tg_event_t;

typedef enum {
    TG_BODIES_NOT_KEPT = 0,    /* bodies: none or hash (data has no "bodies") */
    TG_BODIES_SEALED,          /* sealed and stored with the record */
    TG_BODIES_DROPPED_SPOOLED, /* the event went to the spool (store down): not kept */
    TG_BODIES_DROPPED,         /* out of memory, or sealing failed: not kept (logged) */
    TG_BODIES_PENDING,         /* the worker's: kept, not sealed yet (the writer decides) */
} tg_bodies_state_t;

/* "" for TG_BODIES_NOT_KEPT, else "sealed", "dropped_spooled", "dropped". */
const char *tg_bodies_state_name(int v);

#define TG_BODY_IN  1
#define TG_BODY_OUT 2

/* What the answer's hash covers: the whole answer, decoded (TG_BODY_WHOLE), or less. */
typedef enum {
    TG_BODY_WHOLE = 0,    /* every byte, in its identity form */
    TG_BODY_CUT,          /* the answer ended early (upstream closed, timed out, reset) */
    TG_BODY_CODED,        /* a coding not decoded (unknown, or an answer not read): as sent */
    TG_BODY_DECODE_ERROR, /* decoding failed: the bytes decoded until then */
    TG_BODY_DECODE_CAP,   /* over server.max_decoded_body: the bytes decoded up to the cap */
} tg_body_out_t;

/* "" for TG_BODY_WHOLE, else "cut", "coded", "decode_error", "decode_cap". */
const char *tg_body_out_name(int v);

/* The reason of an aggregate event: the refusals without a valid key from one client
 * address in one UTC minute past log.unauthenticated_per_minute (meter/flood.h). Its
 * ts_us is the minute's start, count the number of refusals, status theirs (401, or 400,
 * 408, 431: one aggregate per status). */
#define TG_REASON_FLOOD "unauthenticated_aggregate"

/* A refusal without a valid key: a 401 (missing, unknown or revoked key, disabled tenant),
 * or a head refused before its key was read (no tenant: 400 malformed, 408 too slow, 431
 * too large). Each costs a client nothing but a connection to provoke. */
static inline int tg_event_unauthenticated(const tg_event_t *ev)
{
    return ev->outcome == TG_OUTCOME_REJECTED &&
           (ev->status == 401 ||
            (!ev->tenant[0] && (ev->status == 400 || ev->status == 408 || ev->status == 431)));
}

/* The requests ev stands for (1, or an aggregate's count). */
static inline int64_t tg_event_count(const tg_event_t *ev)
{
    return ev->count > 1 ? ev->count : 1;
}

/* A new time-ordered id: milliseconds since 2020-01-01 in the top 41 bits, and
 * a per-process random salt plus a counter in the low 22 bits. Thread-safe. Instants
 * after August 2089 (or before 1950) take the last (first) millisecond ids can hold. */
int64_t tg_event_new_id(int64_t wall_us);

/* Copies src into a fixed field, truncating; always NUL-terminates. */
void tg_event_str(char *dst, size_t cap, const char *src, size_t len);
#define TG_EVENT_SET(ev, field, s, n) tg_event_str((ev)->field, sizeof(ev)->field, (s), (n))

#endif
