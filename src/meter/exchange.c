/* One metered exchange: see exchange.h.
 *
 * JSON is read by a parser only: AI requests, answers and stream events by the member
 * picker (util/jpick.h, yajl), which validates the whole text but keeps only the members
 * metering needs; MCP messages, whose ids must be kept and compared as JSON values, by
 * jansson. The few byte-level operations are on JSON text a parser has already accepted:
 * adding a member before an object's closing brace, and removing the exact member
 * `"usage":null`, which in JSON text can only be a member (inside a string every quote is
 * escaped) and is removed only when the parsed object has it at the top level and the text
 * holds it once. */
#include "meter/exchange.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "meter/decode.h"
#include "meter/sse.h"
#include "meter/usage.h"
#include "util/buf.h"

#define MCP_JSON_MAX (4u << 20)   /* an MCP JSON response is parsed whole up to this */
#define SSE_MAX_AI   (1u << 20)   /* one SSE event, AI routes */
#define SSE_MAX_MCP  (4u << 20)   /* one SSE event, MCP (tool results can be large) */
#define KEEP_MAX     (256u << 10) /* buffers larger than this are freed between requests */
/* Rewriting: the raw bytes of the stream event in progress, held until it ends; an event
 * that has not ended by this size passes untouched (see tg_xchg_response_body). */
#define HOLD_MAX   (SSE_MAX_AI + 4096)
#define CODING_MAX 64 /* a longer Content-Encoding is not decoded (flagged) */
/* tools/call whose ids are checked unique; the gateway refuses a batch of more than 64
 * calls anyway, and the check stays O(64 n) for a body of n requests. */
#define CALLS_CHECKED 65

typedef enum {
    EP_NONE = 0, /* nothing metered on this path (e.g. GET /v1/models) */
    EP_CHAT,
    EP_COMPLETIONS,
    EP_EMBEDDINGS,
    EP_RESPONSES,
    EP_MESSAGES,
    EP_MCP,
    EP_UNKNOWN, /* an AI route, a request with a body, an endpoint not recognised: metered
                   on an estimate, and from a usage object if its answer carries one */
} endpoint_t;

/* One JSON-RPC request (a message with a method and an id) of an MCP body. */
typedef struct mreq {
    int tool;  /* index in tools (tools/call), or -1 */
    int state; /* 0 no answer yet, else one of the R_ below */
} mreq_t;
enum { ANS_OK = 1, ANS_TOOL_ERR, ANS_RPC_ERR };

struct tg_xchg {
    tg_route_kind_t kind;
    endpoint_t ep;

    /* Request. */
    char model[128];
    int64_t max_out;
    int64_t choices; /* answers the upstream generates (and bills): n, or best_of */
    int injected;    /* include_usage was added: the stream is rewritten */
    int background;  /* a Responses API call run in the background (its usage never passes) */
    tg_buf_t req;    /* the rewritten body (max: what a rewrite of max_body can take) */
    json_t *ids;     /* MCP: ids of the requests in the body (JSON values), as mreq */
    json_t *tools;   /* MCP: tool names of tools/call requests (strings) */
    mreq_t *mreq;    /* MCP: the requests, in body order (ids[i] is mreq[i]'s id) */
    size_t nreq;     /* MCP: requests (messages with a method and an id) */
    size_t mreq_cap;
    const char *invalid; /* MCP: why the body is not a JSON-RPC message tollgate forwards */
    size_t call_at[CALLS_CHECKED]; /* MCP: mreq indexes of the first tools/call */
    size_t ncall_at;
    int unknown_path; /* AI route: the path is not an endpoint tollgate recognises */
    int batch;        /* MCP: the body was an array */
    int req_unread;   /* a metered request body that is not JSON jansson can read */
    char rpc_method[48];

    /* Response. */
    int status;
    int ok;        /* 2xx */
    int sse;       /* text/event-stream */
    int observe;   /* the body is read for usage or results */
    int rewriting; /* OpenAI stream rewritten event by event */
    tg_sse_t parser;
    int parser_live;
    tg_jpick_t answer; /* an AI JSON answer, read as it passes */
    int answer_live;
    size_t token_max; /* see tg_xchg_set_max_body; 0: the picker's default */
    tg_buf_t body;    /* an MCP JSON answer, kept whole (max: MCP_JSON_MAX) */
    int body_over;    /* ... and it was larger */
    tg_buf_t hold;    /* rewriting: raw bytes of the event in progress (max: HOLD_MAX) */
    tg_usage_t usage;
    size_t n_ok, n_tool_err, n_rpc_err;
    int unreadable; /* an event or body could not be read */
    int too_big;    /* ... because it was over the cap (MCP: 4 MiB) */
    int partial;    /* MCP: some requests got a result, others did not */

    /* What the upstream sent (to the client, or to the drain after it left), for an
     * estimate when its usage did not come (tg_xchg_estimate_out). */
    int gone;           /* the client left: nothing more is emitted */
    int64_t dlv_events; /* stream events read that carry output (carries_output) */
    int out_final;      /* an Anthropic stream's final output count came (message_delta) */
    int64_t dlv_bytes;  /* body bytes read (decoded) */

    /* A compressed answer: the readers above get a decoded copy (see exchange.h). */
    char coding[CODING_MAX]; /* the Content-Encoding lines, joined by commas */
    size_t coding_len;
    int coding_over;        /* ... they did not fit */
    int coded;              /* the answer is not identity: never rewritten */
    int decoding;           /* ... and is read through dec */
    tg_decode_status_t dst; /* what decoding found (TG_DECODE_OK when not decoding) */
    tg_decode_t *dec;       /* made on the connection's first compressed answer */
    uint64_t decoded_max;   /* cap on its decoded bytes; 0: TG_XCHG_DECODED_MAX */
    uint64_t echo_max;      /* ... but at least what an answer may echo (set_max_body) */

    /* audit.bodies: hash (tg_xchg_hash_answer): the answer's SHA-256 as it passes. */
    int hashing;      /* asked for this request */
    int answer_seen;  /* a response head came: its body is being hashed */
    int answer_ended; /* ... and tg_xchg_response_end came: it ended whole */
    EVP_MD_CTX *sha;  /* made on the connection's first hashed answer */
    EVP_MD *sha256;   /* fetched with it (EVP_sha256() looks it up again on every init) */
    /* audit.bodies: encrypt (tg_xchg_keep_answer): the bytes hashed, kept up to keep_max. */
    size_t keep_max; /* 0: not kept for this request */
    tg_buf_t keep;   /* the first keep_max bytes; freed when taken (tg_xchg_take_answer) */
    int keep_trunc;  /* more bytes came than keep_max */
    int keep_failed; /* out of memory: the answer is not kept (the hash still is) */

    /* During tg_xchg_response_body, for the SSE callback. */
    const char *feed_p;
    size_t feed_from;
    tg_xchg_emit_fn emit;
    void *eud;
    int emit_failed;
};

/* ---- small helpers ------------------------------------------------------ */

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int ends_with_lit(const char *p, size_t n, tg_lit_t suffix)
{
    return n >= suffix.n && memcmp(p + n - suffix.n, suffix.s, suffix.n) == 0;
}
/* p[0..n) ends with the string literal suffix (its length known at compile time). */
#define ends_with(p, n, suffix) ends_with_lit(p, n, (tg_lit_t)TG_LIT_INIT(suffix))

/* The length of p[0..n) as a lenient server may read its endpoint: trailing slashes
 * dropped, and the last segment cut at path parameters (";a=b", also percent-encoded
 * as "%3B", which some servers decode before they split) and stripped of trailing dots
 * (which some servers drop), as often as that changes anything ("/runs/;x" is "/runs"). */
static size_t endpoint_len(const char *p, size_t n)
{
    for (;;) {
        while (n > 1 && p[n - 1] == '/')
            n--;
        size_t s = n, cut = n;
        while (s > 0 && p[s - 1] != '/')
            s--;
        for (size_t i = s; i < n && cut == n; i++)
            if (p[i] == ';' || (p[i] == '%' && i + 2 < n && p[i + 1] == '3' &&
                                (p[i + 2] == 'b' || p[i + 2] == 'B')))
                cut = i;
        while (cut > s && p[cut - 1] == '.')
            cut--;
        if (cut == n) return n;
        n = cut;
    }
}

/* Endpoints whose spending tollgate cannot meter, see tg_xchg_offside: 1 for one that
 * mints a credential of the upstream's account, 2 for one that starts work billed later
 * (created with a body). Trailing slashes, path parameters and trailing dots do not hide
 * one (endpoint_len). */
static int offside(tg_route_kind_t kind, const char *p, size_t n)
{
    n = endpoint_len(p, n);
    /* Each suffix below is a last segment of 4, 5, 6, 7, 8, 14 or 22 bytes: a path whose
     * last segment is of another length ("completions") is none of them. */
    size_t seg = 0;
    while (seg < n && p[n - 1 - seg] != '/')
        seg++;
    if (seg > 22 || !((1u << seg) & (0x1f0u | 1u << 14 | 1u << 22))) return 0;
    static const tg_lit_t mint[] = {
        TG_LIT_INIT("/realtime/sessions"), TG_LIT_INIT("/realtime/client_secrets"),
        TG_LIT_INIT("/realtime/transcription_sessions"), TG_LIT_INIT("/realtime/calls")};
    static const tg_lit_t later[] = {TG_LIT_INIT("/batches"), TG_LIT_INIT("/fine_tuning/jobs"),
                                     TG_LIT_INIT("/videos"), TG_LIT_INIT("/runs")};
    if (kind == TG_ROUTE_OPENAI) {
        for (size_t i = 0; i < sizeof mint / sizeof mint[0]; i++)
            if (ends_with_lit(p, n, mint[i])) return 1;
        for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
            if (ends_with_lit(p, n, later[i])) return 2;
    } else if (kind == TG_ROUTE_ANTHROPIC && ends_with(p, n, "/messages/batches")) {
        return 2;
    }
    return 0;
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Bytes of the answer in its identity form: hashed and, with bodies: encrypt, the first
 * keep_max of them kept. */
static void hash_answer(tg_xchg_t *x, const char *p, size_t n)
{
    EVP_DigestUpdate(x->sha, p, n);
    if (!x->keep_max || x->keep_failed) return;
    size_t room = x->keep_max - tg_buf_len(&x->keep);
    if (n > room) x->keep_trunc = 1;
    if (tg_buf_add(&x->keep, p, n > room ? room : n) != 0) x->keep_failed = 1;
}

/* The answer's bytes as sent: hashed unless a decoded copy is (read_answer). */
static inline void hash_sent(tg_xchg_t *x, const char *p, size_t n)
{
    if (x->answer_seen && !x->decoding) hash_answer(x, p, n);
}

static int emit(tg_xchg_t *x, const char *p, size_t n)
{
    hash_sent(x, p, n);    /* what the upstream sent, also after the client left */
    if (x->gone) return 0; /* the answer is still read, for its usage */
    if (x->emit_failed || n == 0) return x->emit_failed ? -1 : 0;
    if (x->emit(x->eud, p, n) != 0) x->emit_failed = 1;
    return x->emit_failed ? -1 : 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

tg_xchg_t *tg_xchg_new(void)
{
    tg_xchg_t *x = calloc(1, sizeof(tg_xchg_t));
    if (!x) return NULL;
    /* The request body is capped by its caller (server.max_body, tg_xchg_set_max_body). */
    tg_buf_init(&x->req, TG_BUF_MAX_LIMIT);
    tg_buf_init(&x->body, MCP_JSON_MAX);
    tg_buf_init(&x->hold, HOLD_MAX);
    return x;
}

static void end_response(tg_xchg_t *x)
{
    if (x->parser_live) tg_sse_free(&x->parser);
    x->parser_live = 0;
    tg_jpick_free(&x->answer);
    x->answer_live = 0;
}

void tg_xchg_free(tg_xchg_t *x)
{
    if (!x) return;
    end_response(x);
    tg_decode_free(x->dec);
    EVP_MD_CTX_free(x->sha);
    EVP_MD_free(x->sha256);
    json_decref(x->ids);
    json_decref(x->tools);
    free(x->mreq);
    tg_buf_free(&x->req);
    tg_buf_free(&x->body);
    tg_buf_free(&x->hold);
    tg_buf_free(&x->keep);
    free(x);
}

void tg_xchg_set_max_body(tg_xchg_t *x, size_t max_body)
{
    size_t echo = max_body > (SIZE_MAX / 4) / 3 ? SIZE_MAX / 4 : 3 * max_body + (4u << 20);
    x->token_max = echo > TG_JPICK_TOKEN_MAX ? echo : TG_JPICK_TOKEN_MAX;
    x->echo_max = echo;
    /* A rewrite adds one member as text, or re-serialises the body through jansson, whose
     * compact form of an accepted body is at most about 6 times as long (a real such as
     * 0.1 prints with 17 digits): 8 x max_body cannot refuse one. (Per request: set only
     * when it changes.) */
    size_t req_max = max_body > TG_BUF_MAX_LIMIT / 8 ? TG_BUF_MAX_LIMIT : 8 * max_body + 4096;
    if (req_max != tg_buf_max(&x->req)) {
        tg_buf_reset(&x->req);
        tg_buf_set_max(&x->req, req_max);
    }
}

void tg_xchg_set_token_max(tg_xchg_t *x, size_t n)
{
    x->token_max = n;
}

void tg_xchg_set_decoded_max(tg_xchg_t *x, uint64_t n)
{
    x->decoded_max = n;
}

void tg_xchg_begin(tg_xchg_t *x, tg_route_kind_t kind, const char *path, size_t plen)
{
    end_response(x);
    json_decref(x->ids);
    json_decref(x->tools);
    x->ids = x->tools = NULL;
    tg_buf_reset_trim(&x->req, KEEP_MAX);
    tg_buf_reset_trim(&x->body, KEEP_MAX);
    tg_buf_reset_trim(&x->hold, KEEP_MAX);
    x->kind = kind;
    x->model[0] = x->rpc_method[0] = '\0';
    x->max_out = -1;
    x->choices = 1;
    x->injected = x->batch = x->req_unread = x->background = 0;
    x->nreq = 0;
    x->invalid = NULL;
    x->ncall_at = 0;
    x->partial = x->gone = 0;
    x->dlv_events = x->dlv_bytes = 0;
    x->out_final = 0;
    x->status = x->ok = x->sse = x->observe = x->rewriting = 0;
    x->body_over = x->too_big = 0;
    x->coding_len = 0;
    x->coding_over = x->coded = x->decoding = 0;
    x->dst = TG_DECODE_OK;
    x->n_ok = x->n_tool_err = x->n_rpc_err = 0;
    x->unreadable = 0;
    x->emit_failed = 0;
    x->hashing = x->answer_seen = x->answer_ended = 0;
    x->keep_max = 0;
    x->keep_trunc = x->keep_failed = 0;
    tg_buf_reset(&x->keep);
    tg_usage_init(&x->usage);
    x->ep = EP_NONE;
    x->unknown_path = 0;
    if (kind == TG_ROUTE_OPENAI) {
        if (ends_with(path, plen, "/chat/completions"))
            x->ep = EP_CHAT;
        else if (ends_with(path, plen, "/completions"))
            x->ep = EP_COMPLETIONS;
        else if (ends_with(path, plen, "/embeddings"))
            x->ep = EP_EMBEDDINGS;
        else if (ends_with(path, plen, "/responses"))
            x->ep = EP_RESPONSES;
        else if (!ends_with(path, plen, "/moderations")) /* free: recognised, not metered */
            x->unknown_path = 1;
    } else if (kind == TG_ROUTE_ANTHROPIC) {
        if (ends_with(path, plen, "/messages"))
            x->ep = EP_MESSAGES;
        else if (!ends_with(path, plen, "/messages/count_tokens")) /* free, as above */
            x->unknown_path = 1;
    } else if (kind == TG_ROUTE_MCP) {
        x->ep = EP_MCP;
    }
}

/* ---- the request ---------------------------------------------------------- */

/* What an OpenAI or Anthropic request body is read for. */
enum {
    R_MODEL,
    R_MAX_COMPLETION,
    R_MAX_TOKENS,
    R_MAX_OUTPUT,
    R_STREAM,
    R_OPTS,
    R_INCLUDE,
    R_BACKGROUND,
    R_CHOICES,
    R_BEST_OF,
    R_N
};
static const tg_jpath_t request_paths[R_N] = {
    [R_MODEL] = {{"model"}},
    [R_MAX_COMPLETION] = {{"max_completion_tokens"}},
    [R_MAX_TOKENS] = {{"max_tokens"}},
    [R_MAX_OUTPUT] = {{"max_output_tokens"}},
    [R_STREAM] = {{"stream"}},
    [R_OPTS] = {{"stream_options"}},
    [R_INCLUDE] = {{"stream_options", "include_usage"}},
    [R_BACKGROUND] = {{"background"}},
    [R_CHOICES] = {{"n"}},
    [R_BEST_OF] = {{"best_of"}},
};
static tg_jpick_spec_t request_spec = TG_JPICK_SPEC(request_paths);

/* Chat and completions generate n answers (completions: best_of, when larger), each up to
 * the maximum, and the provider bills them all: the bound is the maximum times that. */
#define CHOICES_MAX 1024 /* far above any provider's (OpenAI: n <= 128): no overflow */
static void set_choices(tg_xchg_t *x, const tg_jpick_t *pk)
{
    if (x->ep != EP_CHAT && x->ep != EP_COMPLETIONS && x->ep != EP_UNKNOWN) return;
    for (size_t i = R_CHOICES; i <= R_BEST_OF; i++) {
        const tg_jval_t *v = tg_jpick_get(pk, i);
        if (v->type == TG_JT_INT && v->i > x->choices)
            x->choices = v->i > CHOICES_MAX ? CHOICES_MAX : v->i;
        else if (v->type == TG_JT_REAL) /* (50.0: a lax provider reads 50; its value is not
                                           kept, so the worst case) */
            x->choices = CHOICES_MAX;
    }
}

/* The output bound of the whole answer: max tokens times the choices, or -1. */
static int64_t out_bound(const tg_xchg_t *x)
{
    if (x->max_out < 0) return -1;
    return x->max_out > INT64_MAX / x->choices ? INT64_MAX : x->max_out * x->choices;
}

/* The largest of max_completion_tokens, max_tokens, max_output_tokens that is a count:
 * each endpoint reads its own (Anthropic max_tokens, Responses max_output_tokens), so a
 * small one beside it must not stand for the bound the upstream applies. */
static void set_max_out(tg_xchg_t *x, const tg_jpick_t *pk)
{
    for (size_t i = R_MAX_COMPLETION; i <= R_MAX_OUTPUT; i++) {
        const tg_jval_t *v = tg_jpick_get(pk, i);
        if (v->type == TG_JT_INT && v->i >= 0 && v->i > x->max_out) x->max_out = v->i;
    }
}

/* "stream_options": null or an object without include_usage: set it through jansson (the
 * body is re-serialised; rare: clients that name stream_options mostly ask for usage). */
static int set_include_usage(tg_xchg_t *x, const char *body, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    json_t *opts = json_object_get(root, "stream_options");
    int rc = -1;
    if (json_is_null(opts)) {
        opts = json_object();
        if (json_object_set_new(root, "stream_options", opts) != 0) opts = NULL;
    }
    if (json_is_object(opts) && json_object_set_new(opts, "include_usage", json_true()) == 0) {
        char *s = json_dumps(root, JSON_COMPACT);
        if (s && tg_buf_add(&x->req, s, strlen(s)) == 0) rc = 0;
        free(s);
    }
    json_decref(root);
    if (rc != 0) tg_buf_reset(&x->req);
    return rc;
}

/* Streamed chat/completions without include_usage: ask for it. The member is added as
 * text before the closing brace, so every byte the client sent reaches the upstream
 * unchanged; a stream_options object without include_usage is updated through jansson. */
static void inject_usage(tg_xchg_t *x, const tg_jpick_t *pk, const char *body, size_t len)
{
    if (tg_jpick_get(pk, R_INCLUDE)->type == TG_JT_TRUE) return;
    tg_jtype_t opts = tg_jpick_get(pk, R_OPTS)->type;
    if (opts == TG_JT_NULL || opts == TG_JT_OBJECT) {
        if (set_include_usage(x, body, len) == 0) x->injected = 1;
        return;
    }
    if (opts != TG_JT_ABSENT) return; /* not a valid stream_options: the upstream says so */
    /* The body is one valid object: its last non-blank byte is its closing brace. */
    size_t end = len;
    while (end > 0 && is_blank(body[end - 1]))
        end--;
    if (end == 0 || body[end - 1] != '}') return;
    static const char member[] = ",\"stream_options\":{\"include_usage\":true}";
    size_t skip = pk->root_n == 0; /* no comma in an empty object */
    if (tg_buf_add(&x->req, body, end - 1) != 0 ||
        tg_buf_add(&x->req, member + skip, sizeof member - 1 - skip) != 0 ||
        tg_buf_add(&x->req, body + end - 1, len - end + 1) != 0) {
        tg_buf_reset(&x->req);
        return;
    }
    x->injected = 1;
}

#define DUP_ID "Invalid request: a tools/call shares its id with another request"

/* Two JSON-RPC ids are the same id: numbers by their value as a double, as a JavaScript
 * server reads them (the official SDK answers `"id": 1.0` or `1e0` with `"id": 1`, and
 * 2^53 + 1 with 2^53), so a call cannot escape its result, or share one, by spelling its
 * number differently; anything else by value (jansson). */
static int id_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    return json_equal(a, b);
}

static void mcp_request_message(tg_xchg_t *x, json_t *m)
{
    if (json_is_array(m)) {
        /* JSON-RPC 2.0 has no nested batches: one would hide its calls from the rules. */
        x->invalid = "Invalid request: a batch inside a batch";
        return;
    }
    if (!json_is_object(m)) return;
    const char *method = json_string_value(json_object_get(m, "method"));
    if (!method) return; /* a response to a server request */
    if (!x->rpc_method[0]) copy_str(x->rpc_method, sizeof x->rpc_method, method);
    json_t *id = json_object_get(m, "id");
    int has_id = id && !json_is_null(id);
    int tool = -1;
    if (strcmp(method, "tools/call") == 0) {
        if (!has_id) {
            /* A call without an id gets no answer: it could be neither billed nor counted
             * by its result. MCP requires the id. */
            x->invalid = "Invalid request: tools/call without an id";
            return;
        }
        json_t *jn = json_object_get(json_object_get(m, "params"), "name");
        const char *name = json_string_value(jn);
        if (name && strlen(name) != json_string_length(jn)) {
            /* A NUL would cut the name every rule and price compares. */
            x->invalid = "Invalid params: a tool name with a NUL character";
            return;
        }
        tool = (int)json_array_size(x->tools);
        json_array_append_new(x->tools, json_string(name ? name : ""));
    }
    if (has_id) {
        /* Answers are paired with calls by id: a call sharing its id with another request
         * could be credited with that request's result. */
        for (size_t i = 0; tool >= 0 && x->ncall_at < CALLS_CHECKED && i < x->nreq; i++)
            if (id_equal(json_array_get(x->ids, i), id)) x->invalid = DUP_ID;
        for (size_t i = 0; tool < 0 && i < x->ncall_at; i++)
            if (id_equal(json_array_get(x->ids, x->call_at[i]), id)) x->invalid = DUP_ID;
        if (x->invalid) return;
        if (tool >= 0 && x->ncall_at < CALLS_CHECKED) x->call_at[x->ncall_at++] = x->nreq;
        if (x->nreq == x->mreq_cap) {
            size_t cap = x->mreq_cap ? x->mreq_cap * 2 : 8;
            mreq_t *n = realloc(x->mreq, cap * sizeof *n);
            if (!n) {
                x->invalid = "Internal error: out of memory";
                return;
            }
            x->mreq = n;
            x->mreq_cap = cap;
        }
        x->mreq[x->nreq++] = (mreq_t){tool, 0};
        json_array_append(x->ids, id);
    }
}

static void mcp_request(tg_xchg_t *x, const char *body, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        x->req_unread = 1;
        return;
    }
    x->ids = json_array();
    x->tools = json_array();
    if (json_is_array(root)) {
        x->batch = 1;
        size_t i;
        json_t *m;
        json_array_foreach(root, i, m) mcp_request_message(x, m);
    } else {
        mcp_request_message(x, root);
    }
    json_decref(root);
}

void tg_xchg_request(tg_xchg_t *x, const char *body, size_t len, const char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (x->ep == EP_NONE && x->unknown_path && len > 0) x->ep = EP_UNKNOWN; /* a body */
    if (x->ep == EP_NONE) return;
    if (x->ep == EP_MCP) {
        mcp_request(x, body, len);
        return;
    }
    tg_jpick_t pk;
    tg_jpick_init(&pk);
    if (tg_jpick_doc(&pk, &request_spec, body, len) != 0) {
        x->req_unread = x->ep != EP_UNKNOWN; /* (any body may go to an unknown endpoint) */
        return;
    }
    if (pk.root != TG_JT_OBJECT) return;
    const tg_jval_t *model = tg_jpick_get(&pk, R_MODEL);
    if (model->type == TG_JT_STRING) copy_str(x->model, sizeof x->model, model->s);
    set_max_out(x, &pk);
    set_choices(x, &pk);
    if (x->ep == EP_EMBEDDINGS) x->max_out = 0;
    /* "background": true answers at once with the response queued and no usage; the
     * result (and its usage) is fetched later by GET, which carries no body to meter. (On
     * a path tollgate does not recognise too: "/v1/responses/" may be served as one.) */
    x->background =
        (x->ep == EP_RESPONSES || (x->ep == EP_UNKNOWN && x->kind == TG_ROUTE_OPENAI)) &&
        tg_jpick_get(&pk, R_BACKGROUND)->type == TG_JT_TRUE;
    if ((x->ep == EP_CHAT || x->ep == EP_COMPLETIONS) &&
        tg_jpick_get(&pk, R_STREAM)->type == TG_JT_TRUE)
        inject_usage(x, &pk, body, len);
    if (x->injected) {
        *out = x->req.p;
        *outlen = x->req.len;
    }
}

size_t tg_xchg_accept_encoding(const tg_xchg_t *x, const char *v, size_t n, char *out, size_t cap)
{
    if (x->injected) {
        /* A stream tollgate rewrites must arrive readable as text: see exchange.h. */
        if (cap < 8) return 0;
        memcpy(out, TG_LIT("identity"));
        return 8;
    }
    return tg_decode_accept(v, n, out, cap);
}

int tg_xchg_request_coded(const char *v, size_t n)
{
    return !tg_decode_is_identity(v, n);
}

int tg_xchg_request_unreadable(const tg_xchg_t *x)
{
    return x->req_unread;
}

const char *tg_xchg_mcp_invalid(const tg_xchg_t *x)
{
    return x->invalid;
}

int tg_xchg_counts_tokens(const tg_xchg_t *x)
{
    return x->ep != EP_NONE && x->ep != EP_MCP;
}

int tg_xchg_unknown_endpoint(const tg_xchg_t *x)
{
    return x->ep == EP_UNKNOWN;
}

int tg_xchg_offside(tg_route_kind_t kind, const char *path, size_t plen, int has_body)
{
    int o = offside(kind, path, plen);
    return o == 1 || (o == 2 && has_body);
}

int tg_xchg_background(const tg_xchg_t *x)
{
    return x->background;
}

const char *tg_xchg_model(const tg_xchg_t *x)
{
    return x->model;
}

int64_t tg_xchg_max_output(const tg_xchg_t *x)
{
    return out_bound(x);
}

int64_t tg_xchg_choices(const tg_xchg_t *x)
{
    return x->choices;
}

size_t tg_xchg_ntools(const tg_xchg_t *x)
{
    return x->tools ? json_array_size(x->tools) : 0;
}

const char *tg_xchg_tool(const tg_xchg_t *x, size_t i)
{
    return json_string_value(json_array_get(x->tools, i));
}

size_t tg_xchg_mcp_error(const tg_xchg_t *x, const char *message, char *buf, size_t cap)
{
    json_t *out = json_array();
    size_t n = x->ids ? json_array_size(x->ids) : 0;
    for (size_t i = 0; i < (n ? n : 1); i++) {
        json_t *id = n ? json_incref(json_array_get(x->ids, i)) : json_null();
        json_array_append_new(out, json_pack("{s:s,s:o,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id,
                                             "error", "code", -32001, "message", message));
    }
    json_t *doc = x->batch ? out : json_array_get(out, 0);
    size_t len = doc ? json_dumpb(doc, buf, cap ? cap - 1 : 0, JSON_COMPACT) : 0;
    json_decref(out);
    if (len == 0 || len >= cap) {
        if (cap) buf[0] = '\0';
        return 0;
    }
    buf[len] = '\0';
    return len;
}

/* ---- the response --------------------------------------------------------- */

/* Whose usage object an answer carries: an unknown endpoint's is read as its route's. */
static tg_usage_api_t answer_api(const tg_xchg_t *x)
{
    if (x->ep == EP_MESSAGES || (x->ep == EP_UNKNOWN && x->kind == TG_ROUTE_ANTHROPIC))
        return TG_USAGE_ANTHROPIC;
    return TG_USAGE_OPENAI;
}

static void mcp_response_message(tg_xchg_t *x, json_t *m)
{
    if (json_is_array(m)) {
        size_t i;
        json_t *e;
        json_array_foreach(m, i, e) mcp_response_message(x, e);
        return;
    }
    if (!json_is_object(m) || json_object_get(m, "method")) return; /* not a response */
    json_t *id = json_object_get(m, "id");
    json_t *result = json_object_get(m, "result");
    json_t *error = json_object_get(m, "error");
    if (!id || (!result && !error)) return;
    for (size_t i = 0; i < x->nreq; i++) {
        if (x->mreq[i].state || !id_equal(json_array_get(x->ids, i), id)) continue;
        if (error)
            x->mreq[i].state = ANS_RPC_ERR, x->n_rpc_err++;
        else if (json_is_true(json_object_get(result, "isError")))
            x->mreq[i].state = ANS_TOOL_ERR, x->n_tool_err++;
        else
            x->mreq[i].state = ANS_OK, x->n_ok++;
        return;
    }
}

/* Where the one top-level `"usage":null` member (with its comma) sits in raw event bytes,
 * or -1 when there is not exactly one. */
static long usage_null_at(const char *raw, size_t n)
{
    static const char pats[][15] = {",\"usage\":null", "\"usage\":null,"};
    for (size_t k = 0; k < 2; k++) {
        const char *a = memmem(raw, n, pats[k], 13);
        if (!a) continue;
        if (memmem(a + 1, n - (size_t)(a + 1 - raw), pats[k], 13)) return -1;
        return (long)(a - raw);
    }
    return -1;
}

/* Sends one OpenAI stream event being rewritten (raw: its bytes), minus what the client
 * did not ask for. seen: what tg_usage_openai_event found in it, -1 when it was not read. */
static void send_rewritten(tg_xchg_t *x, int seen, const char *raw, size_t n)
{
    if (seen > 0 && (seen & TG_USAGE_EV_USAGE_CHUNK)) return; /* the usage chunk */
    /* An event that was not read (no usage object in it) loses its one "usage":null
     * member as text: in JSON text that can only be a member, and OpenAI's chunks have it
     * at the top level only. */
    long at = seen < 0 || (seen & TG_USAGE_EV_USAGE_NULL) ? usage_null_at(raw, n) : -1;
    if (at < 0) {
        emit(x, raw, n);
        return;
    }
    emit(x, raw, (size_t)at);
    emit(x, raw + at + 13, n - (size_t)at - 13);
}

/* Rewriting: the raw bytes of the block that just ended (what was held plus this chunk up
 * to the block's end) are sent, through send_rewritten. */
static void pass_event(tg_xchg_t *x, int seen)
{
    size_t pos = x->parser.pos;
    const char *raw = x->feed_p + x->feed_from;
    size_t n = pos - x->feed_from;
    if (x->hold.len) {
        int rc = tg_buf_add(&x->hold, raw, n);
        if (rc == TG_BUF_TOOBIG) {
            /* The event began within HOLD_MAX and ends past it in this chunk: read whole,
             * it is rewritten like any other, from a copy made once (rare: over 1 MiB). */
            char *whole = malloc(x->hold.len + n);
            if (whole) {
                memcpy(whole, x->hold.p, x->hold.len);
                memcpy(whole + x->hold.len, raw, n);
                send_rewritten(x, seen, whole, x->hold.len + n);
                free(whole);
                n = 0;
            }
        }
        if (rc == TG_BUF_OK) {
            send_rewritten(x, seen, x->hold.p, x->hold.len);
        } else if (n) { /* out of memory: the bytes pass as they came */
            x->unreadable = 1;
            emit(x, x->hold.p, x->hold.len);
            emit(x, raw, n);
        }
    } else {
        send_rewritten(x, seen, raw, n);
    }
    tg_buf_reset(&x->hold);
    x->feed_from = pos;
}

/* 1 when p holds a "usage" member whose value is an object (not null). */
static int usage_object_in(const char *p, size_t n)
{
    static const char key[] = "\"usage\"";
    const char *end = p + n;
    for (const char *a = p; (a = memmem(a, (size_t)(end - a), key, sizeof key - 1));
         a += sizeof key - 1) {
        const char *v = a + sizeof key - 1;
        while (v < end && is_blank(*v))
            v++;
        if (v >= end || *v != ':') continue;
        for (v++; v < end && is_blank(*v); v++)
            ;
        if (v < end && *v == '{') return 1;
    }
    return 0;
}

/* For the estimate of what a client received: an unnamed event (the parser names it
 * "message": OpenAI chat and completions chunks) other than [DONE], or a named one whose
 * name ends in delta (Anthropic content_block_delta, the Responses API's
 * response.output_text.delta): the events that carry the answer's text, a token or a few
 * each. */
static int carries_output(const char *ev, size_t elen, const char *data, size_t dlen)
{
    if (TG_LIT_EQ(ev, elen, "message")) return !TG_LIT_EQ(data, dlen, "[DONE]");
    return elen >= 6 && memcmp(ev + elen - 5, "delta", 5) == 0 &&
           (ev[elen - 6] == '_' || ev[elen - 6] == '.');
}

static void on_event(void *ud, const char *ev, size_t elen, const char *data, size_t dlen)
{
    tg_xchg_t *x = ud;
    json_t *root = NULL;
    json_error_t jerr;
    int seen = -1;
    if (carries_output(ev, elen, data, dlen)) x->dlv_events++;
    endpoint_t ep = x->ep;
    if (ep == EP_UNKNOWN) ep = x->kind == TG_ROUTE_ANTHROPIC ? EP_MESSAGES : EP_RESPONSES;
    switch (ep) {
    case EP_CHAT:
    case EP_COMPLETIONS:
    case EP_RESPONSES:
        /* Only events that carry a usage object are parsed (and the first, for the model,
         * when the request named none): with include_usage every other chunk has
         * "usage":null, and parsing each of them cost 20 times the rest of the relay. */
        if (usage_object_in(data, dlen) || (!x->model[0] && !x->usage.model[0])) {
            seen = tg_usage_openai_event(data, dlen, &x->usage);
            if (seen < 0) x->unreadable = 1;
        }
        break;
    case EP_MESSAGES:
        if (TG_LIT_EQ(ev, elen, "message_start") || TG_LIT_EQ(ev, elen, "message_delta") ||
            TG_LIT_EQ(ev, elen, "message"))
            tg_usage_anthropic_event(ev, elen == 7 ? 0 : elen, data, dlen, &x->usage);
        /* (An event named "message" says its type inside: taken as final, as before.) */
        if (TG_LIT_EQ(ev, elen, "message_delta") || elen == 7) x->out_final = 1;
        break;
    case EP_MCP:
        root = json_loadb(data, dlen, JSON_ALLOW_NUL, &jerr);
        if (root)
            mcp_response_message(x, root);
        else
            x->unreadable = 1;
        break;
    default: break;
    }
    if (x->rewriting && tg_sse_skipped(&x->parser) != 0) {
        /* An event over the cap went by earlier in this chunk: rewriting ends there. This
         * event's bytes stay unconsumed (feed_from does not move), so tg_xchg_response_body
         * forwards them untouched with the big event; rewriting them here would strip or
         * drop them, and dropping the usage chunk would drop the big event's bytes too. */
        x->rewriting = 0;
        x->unreadable = 1;
    }
    if (x->rewriting) pass_event(x, seen);
    json_decref(root);
}

/* A comment-only block (keep-alive) while rewriting: sent at once, as it came. */
static void on_empty(void *ud)
{
    tg_xchg_t *x = ud;
    if (x->rewriting && tg_sse_skipped(&x->parser) == 0) pass_event(x, -1);
}

void tg_xchg_response_coding(tg_xchg_t *x, const char *v, size_t n)
{
    size_t need = n + (x->coding_len ? 1 : 0);
    if (x->coding_over || need > sizeof x->coding - x->coding_len) {
        x->coding_over = 1;
        return;
    }
    if (x->coding_len) x->coding[x->coding_len++] = ',';
    memcpy(x->coding + x->coding_len, v, n);
    x->coding_len += n;
}

/* A compressed answer to be read: the decoder is made (once per connection) and started.
 * Returns 0, or -1 when it cannot be read at all (x->dst says why). */
static int start_decoding(tg_xchg_t *x)
{
    x->decoding = 1;
    if (x->coding_over) {
        x->dst = TG_DECODE_UNKNOWN;
        return -1;
    }
    if (!x->dec && !(x->dec = tg_decode_new())) {
        x->dst = TG_DECODE_CORRUPT;
        return -1;
    }
    /* A client can make an answer echo its request (3 x max_body, \u escapes): the cap
     * never falls below that, or a large echo would pass the cap and go unmetered. */
    uint64_t cap = x->decoded_max ? x->decoded_max : TG_XCHG_DECODED_MAX;
    x->dst =
        tg_decode_start(x->dec, x->coding, x->coding_len, cap > x->echo_max ? cap : x->echo_max);
    return x->dst == TG_DECODE_OK ? 0 : -1;
}

void tg_xchg_hash_answer(tg_xchg_t *x)
{
    x->hashing = 1;
}

void tg_xchg_keep_answer(tg_xchg_t *x, size_t max)
{
    x->hashing = 1;
    x->keep_max = max;
    tg_buf_set_max(&x->keep, max);
}

int tg_xchg_take_answer(tg_xchg_t *x, const char **p, size_t *n, int *truncated)
{
    *p = tg_buf_str(&x->keep);
    *n = tg_buf_len(&x->keep);
    *truncated = x->keep_trunc;
    return x->keep_max && !x->keep_failed ? 1 : 0;
}

void tg_xchg_drop_answer(tg_xchg_t *x)
{
    if (tg_buf_len(&x->keep))
        OPENSSL_cleanse(tg_buf_end(&x->keep) - tg_buf_len(&x->keep), tg_buf_len(&x->keep));
    tg_buf_free(&x->keep); /* not kept per connection: up to keep_max each */
    x->keep_max = 0;
}

/* The answer's hash starts with its head: 0, or -1 out of memory (the event then has none). */
static int start_hash(tg_xchg_t *x)
{
    if (!x->sha256 && !(x->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) return -1;
    if (!x->sha && !(x->sha = EVP_MD_CTX_new())) return -1;
    return EVP_DigestInit_ex2(x->sha, x->sha256, NULL) == 1 ? 0 : -1;
}

void tg_xchg_response_head(tg_xchg_t *x, int status, const char *ctype, size_t clen)
{
    if (x->hashing) x->answer_seen = start_hash(x) == 0;
    x->status = status;
    x->ok = status >= 200 && status < 300;
    x->sse = ctype && clen >= sizeof "text/event-stream" - 1 &&
             strncasecmp(ctype, TG_LIT("text/event-stream")) == 0;
    x->observe = x->ok && x->ep != EP_NONE && (x->ep != EP_MCP || x->nreq > 0);
    /* (The identity check costs nothing when the answer has no Content-Encoding.) */
    if (x->observe && (x->coding_over || !tg_decode_is_identity(x->coding, x->coding_len))) {
        x->coded = 1;
        /* A coding tollgate does not know is read as it is: should it be JSON after all
         * (a mislabelled answer), its usage still counts; else the tokens stay unknown. */
        if (start_decoding(x) != 0 && x->dst == TG_DECODE_UNKNOWN) x->decoding = 0;
    }
    /* Compressed bytes cannot be rewritten: such a stream passes untouched (the client
     * then also gets the usage chunk it did not ask for) and is read from the copy. */
    x->rewriting = x->observe && x->sse && x->injected && !x->coded;
    if (x->observe && x->sse) {
        /* An AI event may echo the request: the Responses API repeats instructions and
         * tools in response.created and in response.completed, which carries the usage. A
         * request with 1 MiB of instructions made that event too large to read, and the
         * answer free; so the cap is never below what an answer may echo (set_max_body),
         * as for a JSON answer's tokens. (Memory grows only to the largest event seen.) */
        size_t max_ev = x->ep == EP_MCP ? SSE_MAX_MCP : SSE_MAX_AI;
        if (x->ep != EP_MCP && x->echo_max > max_ev) max_ev = (size_t)x->echo_max;
        tg_sse_init(&x->parser, max_ev, on_event, x);
        x->parser.on_empty = on_empty;
        x->parser_live = 1;
    } else if (x->observe && x->ep != EP_MCP) {
        if (tg_usage_begin(&x->answer, answer_api(x)) != 0) x->unreadable = 1;
        if (x->token_max) x->answer.token_max = x->token_max;
        x->answer_live = 1;
    }
}

int tg_xchg_partial(const tg_xchg_t *x)
{
    return x->partial;
}

int tg_xchg_call_billed(const tg_xchg_t *x, size_t tool)
{
    for (size_t i = 0; i < x->nreq; i++) {
        if (x->mreq[i].tool != (int)tool) continue;
        /* Its own result, or (an answer too large to read) none that could be read. */
        return x->mreq[i].state == ANS_OK || (x->mreq[i].state == 0 && x->too_big);
    }
    return 0;
}

int tg_xchg_rewrites(const tg_xchg_t *x)
{
    return x->rewriting;
}

/* An MCP JSON answer: kept whole up to MCP_JSON_MAX, then no more. */

void tg_xchg_client_gone(tg_xchg_t *x)
{
    x->gone = 1;
}

int64_t tg_xchg_estimate_out(const tg_xchg_t *x)
{
    /* A stream: one token per delivered event (OpenAI's chunks and the Responses API's
     * deltas carry about one each; Anthropic's deltas may carry more: this errs low). A
     * JSON answer: one token per 4 bytes delivered, the usual rule for English text. */
    /* A background response ran (or will run) out of sight: its bound, not the few bytes
     * of the queued answer. */
    if (x->background && !x->sse) return out_bound(x);
    int64_t n = x->sse ? x->dlv_events : (x->dlv_bytes + 3) / 4;
    if (x->max_out >= 0 && n > out_bound(x)) n = out_bound(x);
    return n;
}
static void keep_json(tg_xchg_t *x, const char *p, size_t n)
{
    if (x->body_over) return;
    int rc = tg_buf_add(&x->body, p, n);
    if (rc == TG_BUF_TOOBIG) {
        x->body_over = 1;
        tg_buf_reset_trim(&x->body, KEEP_MAX);
    } else if (rc != TG_BUF_OK) {
        x->unreadable = 1;
    }
}

/* Answer bytes as sent (identity), or decoded, to the reader of this answer. */
static int read_answer(void *ud, const char *p, size_t n)
{
    tg_xchg_t *x = ud;
    if (x->answer_seen && x->decoding) hash_answer(x, p, n);
    x->dlv_bytes += (int64_t)n;
    if (x->sse)
        tg_sse_feed(&x->parser, p, n);
    else if (x->answer_live)
        tg_jpick_feed(&x->answer, p, n);
    else
        keep_json(x, p, n);
    return 0;
}

int tg_xchg_response_body(tg_xchg_t *x, const char *p, size_t n, tg_xchg_emit_fn fn, void *ud)
{
    x->emit = fn;
    x->eud = ud;
    if (!x->rewriting) {
        if (emit(x, p, n) != 0) return -1;
        if (!x->observe) return 0;
        if (!x->decoding)
            read_answer(x, p, n);
        else if (x->dst == TG_DECODE_OK)
            x->dst = tg_decode_feed(x->dec, p, n, read_answer, x);
        return 0;
    }
    x->feed_p = p;
    x->feed_from = 0;
    size_t skipped = tg_sse_skipped(&x->parser);
    tg_sse_feed(&x->parser, p, n);
    /* The rest of the chunk is the start of the next event: held until it ends. */
    const char *rest = p + x->feed_from;
    size_t nrest = n - x->feed_from;
    if (tg_sse_skipped(&x->parser) != skipped || tg_buf_add(&x->hold, rest, nrest) != 0) {
        /* An event too large to rewrite (over the parser's cap, or HOLD_MAX without its
         * end): from here on the stream passes untouched. */
        x->unreadable = 1;
        x->rewriting = 0;
        emit(x, x->hold.p, x->hold.len);
        emit(x, rest, nrest);
        tg_buf_reset(&x->hold);
    }
    x->feed_p = NULL;
    return x->emit_failed ? -1 : 0;
}

int tg_xchg_response_end(tg_xchg_t *x, tg_xchg_emit_fn fn, void *ud)
{
    x->emit = fn;
    x->eud = ud;
    x->answer_ended = 1;
    if (x->rewriting && x->hold.len) {
        emit(x, x->hold.p, x->hold.len);
        tg_buf_reset(&x->hold);
    }
    return x->emit_failed ? -1 : 0;
}

/* The whole answer has passed: what it reported. */
static void finish_json(tg_xchg_t *x)
{
    if (x->answer_live) {
        tg_usage_api_t api = answer_api(x);
        if (tg_jpick_end(&x->answer) != 0 || tg_usage_answer(&x->answer, api, &x->usage) != 0)
            x->unreadable = 1;
        if (tg_jpick_too_big(&x->answer)) x->too_big = 1;
        return;
    }
    json_error_t jerr;
    json_t *root =
        x->body_over ? NULL : json_loadb(tg_buf_str(&x->body), x->body.len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        x->unreadable = 1;
        return;
    }
    mcp_response_message(x, root);
    json_decref(root);
}

/* The answer's hash into ev (after decoding ended): what it covers in ev->body_out. */
static void finish_hash(tg_xchg_t *x, tg_event_t *ev)
{
    unsigned len = 0;
    x->answer_seen = 0;
    if (EVP_DigestFinal_ex(x->sha, ev->body_sha_out, &len) != 1 || len != 32) return;
    ev->body_hashed |= TG_BODY_OUT;
    if (x->dst == TG_DECODE_CAP)
        ev->body_out = TG_BODY_DECODE_CAP;
    else if (x->dst == TG_DECODE_CORRUPT || x->dst == TG_DECODE_TRUNCATED)
        ev->body_out = x->answer_ended ? TG_BODY_DECODE_ERROR : TG_BODY_CUT;
    else if (!x->answer_ended)
        ev->body_out = TG_BODY_CUT;
    else if (!x->decoding && (x->coding_over || !tg_decode_is_identity(x->coding, x->coding_len)))
        ev->body_out = TG_BODY_CODED;
    else
        ev->body_out = TG_BODY_WHOLE;
}

void tg_xchg_finish(tg_xchg_t *x, tg_event_t *ev, int *unparsed)
{
    *unparsed = 0;
    if (x->decoding && x->dst == TG_DECODE_OK) x->dst = tg_decode_end(x->dec);
    if (x->answer_seen) finish_hash(x, ev);
    if (x->dec) tg_decode_trim(x->dec);
    /* What could not be decoded was not read (an unknown coding: nothing was). */
    if (x->dst != TG_DECODE_OK) x->unreadable = 1;
    if (x->observe && !x->sse) finish_json(x);
    /* An event the parser dropped for its size was not read (an MCP result over 4 MiB). */
    if (x->parser_live && tg_sse_skipped(&x->parser)) x->unreadable = x->too_big = 1;
    if (x->body_over) x->too_big = 1;
    end_response(x);
    /* The model the upstream says it ran is the one priced (a dated snapshot of the one
     * asked for, usually); else the one asked for. */
    const char *model = x->usage.model[0] ? x->usage.model : x->model;
    if (model[0]) TG_EVENT_SET(ev, model, model, strlen(model));
    if (x->ep == EP_MCP) {
        if (x->rpc_method[0]) TG_EVENT_SET(ev, rpc_method, x->rpc_method, strlen(x->rpc_method));
        const char *tool = tg_xchg_ntools(x) ? tg_xchg_tool(x, 0) : NULL;
        if (tool && tool[0]) TG_EVENT_SET(ev, tool, tool, strlen(tool));
        if (!x->observe) return;
        char reason[48] = "";
        size_t failed = x->nreq - x->n_ok; /* an error, or no answer */
        if (x->n_ok && failed && !x->too_big) {
            /* Each call is billed by its own result: the event is billable for those that
             * got one (tg_xchg_call_billed), and says how many of how many. */
            snprintf(reason, sizeof reason, "partial:%zu/%zu", x->n_ok, x->nreq);
            x->partial = 1;
        } else if (x->n_rpc_err) {
            strcpy(reason, "rpc_error");
        } else if (x->n_tool_err) {
            strcpy(reason, "tool_error");
        } else if (x->n_ok < x->nreq && !x->too_big && x->dst == TG_DECODE_OK) {
            strcpy(reason, "no_result"); /* (an answer too large to read, or that could not
                                            be decoded, is billed, and counted) */
        }
        /* A client that left (client_closed, drained) pays for the calls that got a
         * result; with none, the answer is not billable, and says why. */
        if (reason[0] && (!ev->reason[0] || (x->gone && !x->n_ok)))
            TG_EVENT_SET(ev, reason, reason, strlen(reason));
        *unparsed = x->unreadable && x->n_ok + x->n_tool_err + x->n_rpc_err < x->nreq;
        return;
    }
    if (!x->observe) return;
    if (x->usage.known) {
        ev->tokens_in = x->usage.tokens_in;
        ev->tokens_out = x->usage.tokens_out;
        /* A client that left an Anthropic stream ended before its final output count
         * (message_delta): message_start's is provisional, so the output is not known
         * (the caller estimates it). */
        if (x->gone && x->sse && answer_api(x) == TG_USAGE_ANTHROPIC && !x->out_final)
            ev->tokens_out = TG_TOKENS_UNKNOWN;
        ev->tokens_cached = x->usage.tokens_cached;
        ev->tokens_cache_write = x->usage.cache_write;
    } else if (x->ep != EP_UNKNOWN && !x->background) {
        *unparsed = 1; /* (an unknown endpoint's or a background call's answer need not
                          carry usage) */
    }
}

const char *tg_xchg_decode_flag(const tg_xchg_t *x)
{
    return tg_decode_flag(x->dst);
}
