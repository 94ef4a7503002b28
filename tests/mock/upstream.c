/* mock-upstream: the upstream the e2e tests, the demo and the benchmarks talk to.
 *
 * N worker threads, each with its own libuv loop and its own listening socket bound to the
 * same address with SO_REUSEPORT, so the kernel spreads connections and no accept lock is
 * shared. Requests are parsed by http_parser, never by hand; the query string picks the
 * behaviour (see `usage` below). A connection answers one request at a time: while a
 * response is delayed or streamed the parser stays paused and reading stops, so pipelined
 * requests are answered in order and a client that does not read cannot make us buffer
 * without bound (also capped by MAX_INFLIGHT queued writes per connection).
 *
 * Allocation on the hot path: one malloc per connection (the read buffer lives in it);
 * write requests come from a per-thread free list; generated bodies are slices of one static
 * filler buffer, written with writev and never copied.
 *
 * AI endpoints (POST /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses,
 * /v1/messages) imitate the OpenAI and Anthropic APIs closely enough for their official SDKs:
 * the request body is buffered (capped), parsed with jansson, and the whole response (or
 * every event of a stream, back to back) is generated before the head is sent, so a stream
 * is only paced, never computed, while it is written. Token counts are a pure function of
 * the request (see usage) and every such response says them in x-mock-usage, so a test can
 * check what a gateway recorded even when the client never sees a usage object.
 *
 * Like the providers' edges, AI JSON answers are compressed when the request's
 * Accept-Encoding allows it (see `usage`); streams only when a test forces a coding. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <brotli/encode.h>
#include <http_parser.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <uv.h>
#include <zlib.h>
#include <zstd.h>

static const char usage[] =
    "usage: mock-upstream [--listen HOST:PORT] [--threads N] [--port-file PATH] [--no-compress]\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:0; port 0 = ephemeral)\n"
    "  --threads N         worker threads, each with its own SO_REUSEPORT socket (default 1)\n"
    "  --port-file PATH    write the port actually bound to PATH once listening\n"
    "  --no-compress       never compress AI answers on our own (x-mock-encoding still does)\n"
    "  --accept-credentials FILE  an upstream that checks its credential: the value of the\n"
    "                      credential header (one line, exactly) must be a line of FILE (read\n"
    "                      at start), else 401; a match is answered with x-mock-credential: N\n"
    "                      (its line number, 1-based); /healthz is never checked\n"
    "  --credential-header NAME   the header checked (default authorization)\n"
    "Any path answers 200 {\"ok\":true}; query parameters (combinable) change that:\n"
    "  status=N            respond with status N (200..999)\n"
    "  size=N              body of exactly N filler bytes (text/plain)\n"
    "  delay_ms=N          wait N ms before sending the response head\n"
    "  chunked=K           chunked body in K chunks (size= or 1000 bytes); chunk_delay_ms=N\n"
    "  sse=N               text/event-stream: N events data: {\"i\":I} then data: [DONE];\n"
    "                      interval_ms=N between events\n"
    "  echo=1              JSON: method, path, headers, body_bytes, body_sha256\n"
    "  close=1             close the connection without a response\n"
    "  hang=1              never respond (until the client closes)\n"
    "GET /healthz always answers 200 {\"ok\":true}. Exits 0 on SIGTERM or SIGINT.\n"
    "\n"
    "AI endpoints (POST only; the path without its query picks them; of the query parameters\n"
    "only delay_ms, close and hang apply) imitate the real APIs, streamed (\"stream\":true)\n"
    "or not, byte for byte in their framing (compact JSON, SSE):\n"
    "  /v1/chat/completions  OpenAI chat: messages (content string or [{type,text}]),\n"
    "                        max_completion_tokens|max_tokens, stream_options.include_usage,\n"
    "                        prompt_cache_key\n"
    "  /v1/completions       OpenAI legacy completions: prompt (string or array)\n"
    "  /v1/embeddings        input (string or array); encoding_format float|base64;\n"
    "                        dimensions (default 8); one vector per input\n"
    "  /v1/responses         OpenAI Responses: input (string or items), instructions,\n"
    "                        max_output_tokens, prompt_cache_key\n"
    "  /v1/messages          Anthropic Messages: system (string or blocks), messages,\n"
    "                        max_tokens; cache_control on any block\n"
    "Tokens (deterministic): T = ceil(bytes of all prompt text / 4) (message contents, text\n"
    "blocks, system/instructions, prompt, input; no per-message overhead). Output = the max\n"
    "tokens field if given (capped at 10000), else 16; 0 for embeddings; output token i is\n"
    "the text \"tok<i> \". OpenAI: prompt/input tokens = T, cached_tokens = floor(T/2) when\n"
    "prompt_cache_key is given (chat, responses), else 0. Anthropic: with any cache_control,\n"
    "cache_read_input_tokens = floor(T/2), cache_creation_input_tokens = floor(T/4) and\n"
    "input_tokens = the rest; without, input_tokens = T and both are 0. Chat and completions\n"
    "streams without include_usage carry no usage key at all; with it every chunk ends in\n"
    "\"usage\":null and a chunk with \"choices\":[] and the usage precedes data: [DONE].\n"
    "(Responses and Anthropic streams always carry usage, as the real ones do.) Ids derive\n"
    "from a hash of endpoint, model, prompt text and output count (not the raw body, so\n"
    "stream_options does not change them); created is always 1700000000.\n"
    "Every answer to a well-formed AI request has the header\n"
    "  x-mock-usage: {\"model\":M,\"input\":N,\"output\":N,\"cached\":N,\"cache_write\":N}\n"
    "with the numbers the body reports (cached = cached_tokens or cache_read_input_tokens,\n"
    "cache_write = cache_creation_input_tokens), or would have reported (mock-no-usage,\n"
    "mock-bad-json); all 0 on mock-error.\n"
    "  header x-mock-interval-ms: N  wait N ms between streamed events\n"
    "  header x-mock-stall-after: K  with x-mock-stall-ms: N: after K (>= 1) streamed events\n"
    "                                wait N ms before the rest; a JSON answer is sent in two\n"
    "                                halves (Content-Length framing) and K = 1 waits between\n"
    "                                them (a client that leaves mid-answer, deterministically)\n"
    "  header x-mock-stamp: 1        /v1/chat/completions streams: each event starts with a\n"
    "                                line id: NS, NS = CLOCK_MONOTONIC in nanoseconds when\n"
    "                                the event is written (for latency benchmarks)\n"
    "  model mock-no-usage           no usage object anywhere (body or stream)\n"
    "  model mock-bad-json           200, but the body (or every event's data) is cut short by\n"
    "                                its last byte, so it is not valid JSON\n"
    "  model mock-error              400 with the API's error JSON\n"
    "A body that is not a JSON object, or lacks model or the prompt field, gets 400 with the\n"
    "API's error JSON; a body over 8 MiB gets 413.\n"
    "Compression of AI answers (Content-Encoding, as the providers' edges do): a JSON answer\n"
    "(any status) is compressed when Accept-Encoding accepts gzip, deflate, br or zstd: the\n"
    "accepted one with the highest q, gzip on a tie, else the first listed; streams are not.\n"
    "  header x-mock-encoding: C     force coding C on the answer, JSON or stream (streams\n"
    "                                flushed event by event): gzip, deflate (zlib),\n"
    "                                deflate-raw (sent as deflate), br, zstd, identity,\n"
    "                                gzip-corrupt (one byte flipped mid-body), gzip-as-L (a\n"
    "                                gzip body labelled L); any other C is sent as the\n"
    "                                Content-Encoding of the plain body\n"
    "  header x-mock-pad: N          with a coding, N spaces (at most 4 GiB) before a JSON\n"
    "                                answer: still the same JSON, N bytes longer decoded\n";

#define READ_BUF      (16 * 1024)   /* per connection; bodies stream through it */
#define URL_MAX       8192          /* longer request targets get 414 */
#define HDR_BYTES_MAX (96 * 1024)   /* echo's copy of names and values (parser caps the block) */
#define HDR_COUNT_MAX 1000          /* more headers than this get 431 */
#define WREQ_SMALL    4096          /* pooled write buffers; larger ones are malloc'd and freed */
#define WREQ_POOL_MAX 1024          /* free-list length per thread */
#define MAX_INFLIGHT  64            /* queued writes per connection before we stop producing */
#define LINGER_MS     2000          /* after our FIN, wait this long for the client's */
#define SIZE_MAX_BODY (16ULL << 30) /* size= cap: 16 GiB */
#define COUNT_MAX     10000000ULL   /* chunked= and sse= cap */
#define DELAY_MAX     3600000ULL    /* any *_ms cap: one hour */
#define FILLER_PERIOD 64
#define FILLER_SLICE  (256 * 1024)
#define AI_BODY_MAX   (8u << 20) /* AI request bodies are buffered: 413 beyond */
#define AI_MODEL_MAX  256        /* longer model names get 400 (they go into a header) */
#define AI_OUT_MAX    10000      /* output tokens cap */
#define AI_OUT_DEF    16         /* output tokens when the request names no maximum */
#define AI_CREATED    1700000000 /* "created" of every AI object: bodies are reproducible */
#define AI_DIMS_DEF   8          /* embedding dimensions unless "dimensions" says */
#define AI_DIMS_MAX   4096
#define AI_INPUTS_MAX 2048 /* embedding inputs per request, as the real API */
#define AE_MAX        256  /* Accept-Encoding and x-mock-encoding bytes kept */
#define PAD_MAX       (4ULL << 30)

static bool compress_off; /* --no-compress */

#define ACCEPT_MAX 64
static char *accepted[ACCEPT_MAX];                /* --accept-credentials: the lines */
static unsigned accept_line[ACCEPT_MAX];          /* their line numbers in the file */
static size_t naccept;                            /* 0: no credential is checked */
static const char *cred_header = "authorization"; /* --credential-header */

static const char filler_pattern[FILLER_PERIOD + 1] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n";
/* Byte i of every filler body is filler_pattern[i % 64]; a slice starting at body offset o
 * starts at filler + o % 64, so the buffer holds one slice plus one period. */
static char filler[FILLER_SLICE + FILLER_PERIOD];

static const char ok_body[] = "{\"ok\":true}";
static const char chunk_end[] = "\r\n";

typedef struct worker worker_t;
typedef struct conn conn_t;

typedef struct wreq {
    uv_write_t req;
    struct wreq *next; /* free list link */
    conn_t *c;
    size_t len, cap;
    char buf[];
} wreq_t;

/* All fields are touched only by the worker's own thread, except `stop` (uv_async_send). */
struct worker {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_thread_t thread;
    int fd;
    wreq_t *free_wreqs;
    size_t nfree;
    conn_t *conns; /* open connections, for shutdown */
};

/* The AI endpoints, chosen by method and path (ensure_params). */
typedef enum {
    AI_NONE,
    AI_CHAT,        /* POST /v1/chat/completions */
    AI_COMPLETIONS, /* POST /v1/completions */
    AI_EMBEDDINGS,  /* POST /v1/embeddings */
    AI_RESPONSES,   /* POST /v1/responses */
    AI_MESSAGES,    /* POST /v1/messages (Anthropic) */
} ai_kind_t;

typedef struct {
    uint64_t status; /* 0 = 200 */
    uint64_t size;
    uint64_t delay_ms;
    uint64_t chunked; /* number of chunks; 0 = not chunked */
    uint64_t chunk_delay_ms;
    uint64_t sse;
    uint64_t interval_ms;
    bool has_size, has_sse, echo, close, hang, healthz;
    ai_kind_t ai;
} params_t;

typedef struct {
    uint32_t name_off, name_len, val_off, val_len;
} hdr_t;

typedef enum {
    ST_READING,   /* parsing requests; no response in progress */
    ST_DELAY,     /* delay_ms timer running before the head is sent */
    ST_STREAMING, /* chunks or events being produced */
    ST_HANGING,   /* hang=1: discarding input until the client closes */
    ST_CLOSING,   /* shutdown queued behind the last write */
    ST_LINGER,    /* FIN sent, discarding input until the client's FIN or LINGER_MS */
    ST_CLOSED,
} conn_state_t;

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* delay, chunk gaps, linger */
    uv_shutdown_t shut;
    worker_t *w;
    conn_t *prev, *next;
    int open_handles;
    conn_state_t state;
    http_parser parser;
    bool in_parse;         /* parse_input() is on the stack: don't re-enter it */
    bool reading;          /* uv_read_start is in effect */
    bool eof;              /* the client has sent FIN */
    bool wait_drain;       /* too many writes queued: parse again once they are gone */
    int inflight;          /* uv_write requests not yet called back */
    size_t in_off, in_len; /* unparsed input in rbuf, kept while the parser is paused */

    /* the request being read */
    size_t url_len;
    bool params_ready;
    params_t p;
    bool keep_alive, head, http10;
    int err_status;    /* set by a parser callback that rejects the request */
    bool in_value;     /* last header callback was a value */
    bool hdr_started;  /* a header field has begun since the last block started */
    char cur_name[24]; /* first bytes of the current header name, to spot Expect,
                          x-mock-interval-ms and x-mock-stamp */
    size_t cur_name_len;
    char cur_val[16];
    size_t cur_val_len;
    bool expect_continue;
    size_t nhdrs; /* echo only from here on */
    hdr_t *hdrs;
    size_t hdrs_cap;
    char *hbuf;
    size_t hbuf_len, hbuf_cap;
    EVP_MD_CTX *sha;
    uint64_t body_bytes;
    uint64_t ai_interval_ms; /* x-mock-interval-ms */
    bool ai_stamp;           /* x-mock-stamp: 1 */
    uint64_t ai_stall_after; /* x-mock-stall-after (0 = none) */
    uint64_t ai_stall_ms;    /* x-mock-stall-ms */
    char *ai_req;            /* AI endpoints: the request body (owned), up to AI_BODY_MAX */
    size_t ai_req_len, ai_req_cap;
    bool ai_too_big; /* the body went over AI_BODY_MAX: 413 */
    char ae[AE_MAX]; /* Accept-Encoding (several lines joined by commas) */
    size_t ae_len;
    char menc[AE_MAX]; /* x-mock-encoding */
    size_t menc_len;
    uint64_t mpad;     /* x-mock-pad */
    char cred[AE_MAX]; /* the credential header's value (lines joined by commas: no match) */
    size_t cred_len;
    unsigned cred_line; /* --accept-credentials: the matching line, 0 = none */
    char *cur_dst;      /* while a header value is read: where it goes (ae, menc), or NULL */
    size_t *cur_dst_len;

    /* the response being produced */
    const char *body_mem; /* NULL = filler */
    char *echo_json;      /* owned; freed when the response ends */
    uint64_t body_len;
    bool streamed;   /* chunked= or sse=: produced piece by piece */
    bool te_chunked; /* chunked framing (HTTP/1.1); else close-delimited */
    bool no_body;    /* HEAD, 204, 304 */
    bool gap_done;   /* the wait before chunk_i is over */
    bool timer_wait; /* a gap timer is running */
    uint64_t nchunks, chunk_i, gap_ms;
    unsigned ai_status; /* an AI response is ready (ai_prepare); 0 = none */
    const char *ai_ctype;
    char *ai_hdrs; /* extra header lines, each ending in CRLF (owned) */
    char *ai_out;  /* the body, or every event of a stream back to back (owned) */
    size_t ai_out_len;
    size_t *ai_offs; /* streamed: event i is ai_out[ai_offs[i], ai_offs[i + 1]) (owned);
                        NULL = a plain body */

    char url[URL_MAX];
    char rbuf[READ_BUF];
};

static void conn_close(conn_t *c);
static void conn_shutdown(conn_t *c);
static void parse_input(conn_t *c);
static void pump(conn_t *c);
static void on_timer(uv_timer_t *t);
static void ai_free_response(conn_t *c);

/* ---- small string builder (callers size the buffer; appends are bounds-checked) ---- */

typedef struct {
    char *p;
    size_t len, cap;
} sb_t;

/* s may be NULL when n is 0: memcpy must not see it then, or the compiler may assume s is
 * non-NULL in the caller afterwards. */
static void sb_put(sb_t *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) n = b->cap - b->len; /* unreachable when sized right */
    if (n == 0) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_str(sb_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_u64(sb_t *b, uint64_t v, int base)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % (uint64_t)base];
        v /= (uint64_t)base;
    } while (v);
    while (n > 0 && b->len < b->cap)
        b->p[b->len++] = tmp[--n];
}

/* ---- writes ---- */

static wreq_t *wreq_get(conn_t *c, size_t need)
{
    worker_t *w = c->w;
    wreq_t *wr;
    if (need <= WREQ_SMALL && w->free_wreqs) {
        wr = w->free_wreqs;
        w->free_wreqs = wr->next;
        w->nfree--;
    } else {
        size_t cap = need <= WREQ_SMALL ? WREQ_SMALL : need;
        wr = malloc(sizeof *wr + cap);
        if (!wr) return NULL;
        wr->cap = cap;
    }
    wr->c = c;
    wr->len = 0;
    wr->next = NULL;
    return wr;
}

static void wreq_put(worker_t *w, wreq_t *wr)
{
    if (wr->cap == WREQ_SMALL && w->nfree < WREQ_POOL_MAX) {
        wr->next = w->free_wreqs;
        w->free_wreqs = wr;
        w->nfree++;
    } else {
        free(wr);
    }
}

static void on_written(uv_write_t *req, int status)
{
    wreq_t *wr = (wreq_t *)req;
    conn_t *c = wr->c;
    wreq_put(c->w, wr);
    c->inflight--;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->state == ST_STREAMING && !c->timer_wait && c->inflight <= MAX_INFLIGHT / 2) pump(c);
    if (c->wait_drain && c->inflight == 0) {
        c->wait_drain = false;
        if (c->state == ST_READING) parse_input(c);
    }
}

/* Queues wr's bytes, then flen filler bytes for body offset foff, then the static tail. */
static void submit(conn_t *c, wreq_t *wr, uint64_t foff, uint64_t flen, const char *tail,
                   size_t tail_len)
{
    uv_buf_t stack_bufs[64];
    uv_buf_t *bufs = stack_bufs;
    size_t want = 2 + (size_t)((flen + FILLER_SLICE - 1) / FILLER_SLICE), nb = 0;
    if (c->state == ST_CLOSED) {
        wreq_put(c->w, wr);
        return;
    }
    if (want > sizeof stack_bufs / sizeof stack_bufs[0]) {
        /* only for bodies over 15 MiB; libuv copies the array, so it is freed below */
        bufs = malloc(want * sizeof *bufs);
        if (!bufs) {
            wreq_put(c->w, wr);
            conn_close(c);
            return;
        }
    }
    if (wr->len) bufs[nb++] = uv_buf_init(wr->buf, (unsigned)wr->len);
    while (flen) {
        size_t n = flen < FILLER_SLICE ? (size_t)flen : FILLER_SLICE;
        bufs[nb++] = uv_buf_init(filler + foff % FILLER_PERIOD, (unsigned)n);
        foff += n;
        flen -= n;
    }
    if (tail_len) bufs[nb++] = uv_buf_init((char *)tail, (unsigned)tail_len);
    c->inflight++;
    int r = uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)nb, on_written);
    if (bufs != stack_bufs) free(bufs);
    if (r < 0) {
        c->inflight--;
        wreq_put(c->w, wr);
        conn_close(c);
    }
}

/* ---- connection lifecycle ---- */

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->open_handles > 0) return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c->hdrs);
    free(c->hbuf);
    free(c->echo_json);
    free(c->ai_req);
    ai_free_response(c);
    if (c->sha) EVP_MD_CTX_free(c->sha);
    free(c);
}

static void conn_close(conn_t *c)
{
    if (c->state == ST_CLOSED) return;
    c->state = ST_CLOSED;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    conn_t *c = h->data;
    if (c->state != ST_READING) c->in_off = c->in_len = 0; /* discarding */
    buf->base = c->rbuf + c->in_len;
    buf->len = READ_BUF - c->in_len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* Reading is on exactly when a read could make progress. */
static void update_reading(conn_t *c)
{
    bool want;
    switch (c->state) {
    case ST_READING:
        want = !c->wait_drain && !c->eof && c->in_off == c->in_len && c->in_len < READ_BUF;
        break;
    case ST_HANGING:
    case ST_LINGER: want = !c->eof; break;
    default: want = false;
    }
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
            conn_close(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (c->state == ST_CLOSED) return;
    if (status < 0 || c->eof) {
        conn_close(c);
        return;
    }
    /* Closing now, with unread input, would send RST and could destroy the response in the
     * client's receive buffer; wait for its FIN instead. */
    c->state = ST_LINGER;
    c->in_off = c->in_len = 0;
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
    update_reading(c);
}

/* Sends FIN after everything queued, then lingers. */
static void conn_shutdown(conn_t *c)
{
    if (c->state == ST_CLOSED || c->state == ST_CLOSING || c->state == ST_LINGER) return;
    c->state = ST_CLOSING;
    uv_timer_stop(&c->timer);
    update_reading(c);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0) conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    conn_t *c = s->data;
    if (n == 0) return;
    if (n < 0) {
        if (n != UV_EOF || c->state == ST_HANGING || c->state == ST_LINGER) {
            conn_close(c);
            return;
        }
        c->eof = true;
        update_reading(c);
        /* A half-closed client still gets the answers to requests it has finished: parsed
         * ones are queued already, pipelined ones waiting in rbuf are answered first. */
        if (c->state == ST_READING && !c->in_parse && !c->wait_drain && c->in_len == 0)
            conn_shutdown(c);
        return;
    }
    if (c->state != ST_READING) return; /* hanging or lingering: discard */
    c->in_len += (size_t)n;
    parse_input(c);
}

/* ---- request parsing ---- */

static uint64_t parse_num(const char *s, size_t n, uint64_t max)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max) return max;
    }
    return v;
}

static bool key_is(const char *k, size_t kn, const char *lit)
{
    return kn == strlen(lit) && memcmp(k, lit, kn) == 0;
}

static ai_kind_t ai_kind_of(const char *path, size_t n)
{
    static const struct {
        const char *path;
        ai_kind_t kind;
    } eps[] = {
        {"/v1/chat/completions", AI_CHAT}, {"/v1/completions", AI_COMPLETIONS},
        {"/v1/embeddings", AI_EMBEDDINGS}, {"/v1/responses", AI_RESPONSES},
        {"/v1/messages", AI_MESSAGES},
    };
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++)
        if (key_is(path, n, eps[i].path)) return eps[i].kind;
    return AI_NONE;
}

static void ensure_params(conn_t *c)
{
    if (c->params_ready) return;
    c->params_ready = true;
    memset(&c->p, 0, sizeof c->p);
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0) return;
    if (u.field_set & (1 << UF_PATH)) {
        const char *path = c->url + u.field_data[UF_PATH].off;
        size_t plen = u.field_data[UF_PATH].len;
        c->p.healthz = plen == 8 && memcmp(path, "/healthz", 8) == 0 &&
                       (c->parser.method == HTTP_GET || c->parser.method == HTTP_HEAD);
        if (c->parser.method == HTTP_POST) c->p.ai = ai_kind_of(path, plen);
    }
    if (!(u.field_set & (1 << UF_QUERY)) || c->p.healthz) return;
    const char *q = c->url + u.field_data[UF_QUERY].off;
    const char *end = q + u.field_data[UF_QUERY].len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (!amp) amp = end;
        const char *eq = memchr(q, '=', (size_t)(amp - q));
        const char *k = q, *v = eq ? eq + 1 : amp;
        size_t kn = (size_t)((eq ? eq : amp) - q), vn = (size_t)(amp - v);
        params_t *p = &c->p;
        if (key_is(k, kn, "status"))
            p->status = parse_num(v, vn, 100000);
        else if (key_is(k, kn, "size")) {
            p->size = parse_num(v, vn, SIZE_MAX_BODY);
            p->has_size = true;
        } else if (key_is(k, kn, "delay_ms"))
            p->delay_ms = parse_num(v, vn, DELAY_MAX);
        else if (key_is(k, kn, "chunked"))
            p->chunked = parse_num(v, vn, COUNT_MAX);
        else if (key_is(k, kn, "chunk_delay_ms"))
            p->chunk_delay_ms = parse_num(v, vn, DELAY_MAX);
        else if (key_is(k, kn, "sse")) {
            p->sse = parse_num(v, vn, COUNT_MAX);
            p->has_sse = true;
        } else if (key_is(k, kn, "interval_ms"))
            p->interval_ms = parse_num(v, vn, DELAY_MAX);
        else if (key_is(k, kn, "echo"))
            p->echo = parse_num(v, vn, 1) != 0;
        else if (key_is(k, kn, "close"))
            p->close = parse_num(v, vn, 1) != 0;
        else if (key_is(k, kn, "hang"))
            p->hang = parse_num(v, vn, 1) != 0;
        q = amp + 1;
    }
    if (c->p.echo) {
        if (!c->sha && !(c->sha = EVP_MD_CTX_new()))
            c->p.echo = false;
        else if (!EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL))
            c->p.echo = false;
    }
}

static int on_message_begin(http_parser *hp)
{
    conn_t *c = hp->data;
    c->url_len = 0;
    c->params_ready = false;
    c->err_status = 0;
    c->in_value = false;
    c->hdr_started = false;
    c->cur_name_len = c->cur_val_len = 0;
    c->expect_continue = false;
    c->nhdrs = 0;
    c->hbuf_len = 0;
    c->body_bytes = 0;
    c->ai_interval_ms = 0;
    c->ai_stamp = false;
    c->ai_stall_after = c->ai_stall_ms = 0;
    c->ai_req_len = 0;
    c->ai_too_big = false;
    c->ae_len = c->menc_len = 0;
    c->mpad = 0;
    c->cred_len = 0;
    c->cred_line = 0;
    c->cur_dst = NULL;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    conn_t *c = hp->data;
    if (len > URL_MAX - c->url_len) {
        c->err_status = 414;
        return 1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static bool hbuf_put(conn_t *c, const char *at, size_t len)
{
    if (len > HDR_BYTES_MAX - c->hbuf_len) return false;
    if (c->hbuf_len + len > c->hbuf_cap) {
        size_t cap = c->hbuf_cap ? c->hbuf_cap : 4096;
        while (cap < c->hbuf_len + len)
            cap *= 2;
        char *nb = realloc(c->hbuf, cap);
        if (!nb) return false;
        c->hbuf = nb;
        c->hbuf_cap = cap;
    }
    memcpy(c->hbuf + c->hbuf_len, at, len);
    c->hbuf_len += len;
    return true;
}

/* Decides whether the header that just ended was `Expect: 100-continue`,
 * `x-mock-interval-ms` (values longer than cur_val are capped, as parse_num would) or
 * `x-mock-stamp`. */
static void end_header(conn_t *c)
{
    if (c->cur_name_len == 6 && strncasecmp(c->cur_name, "expect", 6) == 0 &&
        c->cur_val_len == 12 && strncasecmp(c->cur_val, "100-continue", 12) == 0)
        c->expect_continue = true;
    if (c->cur_name_len == 18 && strncasecmp(c->cur_name, "x-mock-interval-ms", 18) == 0)
        c->ai_interval_ms = c->cur_val_len > sizeof c->cur_val
                                ? DELAY_MAX
                                : parse_num(c->cur_val, c->cur_val_len, DELAY_MAX);
    if (c->cur_name_len == 18 && strncasecmp(c->cur_name, "x-mock-stall-after", 18) == 0)
        c->ai_stall_after = c->cur_val_len > sizeof c->cur_val
                                ? COUNT_MAX
                                : parse_num(c->cur_val, c->cur_val_len, COUNT_MAX);
    if (c->cur_name_len == 15 && strncasecmp(c->cur_name, "x-mock-stall-ms", 15) == 0)
        c->ai_stall_ms = c->cur_val_len > sizeof c->cur_val
                             ? DELAY_MAX
                             : parse_num(c->cur_val, c->cur_val_len, DELAY_MAX);
    if (c->cur_name_len == 12 && strncasecmp(c->cur_name, "x-mock-stamp", 12) == 0)
        c->ai_stamp = c->cur_val_len == 1 && c->cur_val[0] == '1';
    if (c->cur_name_len == 10 && strncasecmp(c->cur_name, "x-mock-pad", 10) == 0)
        c->mpad = c->cur_val_len > sizeof c->cur_val
                      ? PAD_MAX
                      : parse_num(c->cur_val, c->cur_val_len, PAD_MAX);
    c->cur_name_len = c->cur_val_len = 0;
    c->cur_dst = NULL;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    conn_t *c = hp->data;
    ensure_params(c);
    bool fresh = c->in_value || !c->hdr_started;
    if (c->in_value) end_header(c);
    c->hdr_started = true;
    for (size_t i = 0; i < len; i++) {
        if (c->cur_name_len < sizeof c->cur_name) c->cur_name[c->cur_name_len] = at[i];
        c->cur_name_len++;
    }
    if (c->p.echo) {
        if (fresh) {
            if (c->nhdrs == HDR_COUNT_MAX) {
                c->err_status = 431;
                return 1;
            }
            if (c->nhdrs == c->hdrs_cap) {
                size_t cap = c->hdrs_cap ? c->hdrs_cap * 2 : 32;
                hdr_t *nh = realloc(c->hdrs, cap * sizeof *nh);
                if (!nh) return 1;
                c->hdrs = nh;
                c->hdrs_cap = cap;
            }
            c->hdrs[c->nhdrs++] = (hdr_t){.name_off = (uint32_t)c->hbuf_len};
        }
        hdr_t *h = &c->hdrs[c->nhdrs - 1];
        size_t start = c->hbuf_len;
        if (!hbuf_put(c, at, len)) {
            c->err_status = 431;
            return 1;
        }
        for (size_t i = start; i < c->hbuf_len; i++)
            if (c->hbuf[i] >= 'A' && c->hbuf[i] <= 'Z') c->hbuf[i] += 'a' - 'A';
        h->name_len += (uint32_t)len;
    }
    c->in_value = false;
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    conn_t *c = hp->data;
    if (!c->in_value) {
        c->cur_dst = NULL;
        if (c->cur_name_len == 15 && strncasecmp(c->cur_name, "accept-encoding", 15) == 0) {
            c->cur_dst = c->ae;
            c->cur_dst_len = &c->ae_len;
        } else if (c->cur_name_len == 15 && strncasecmp(c->cur_name, "x-mock-encoding", 15) == 0) {
            c->cur_dst = c->menc;
            c->cur_dst_len = &c->menc_len;
        } else if (naccept && c->cur_name_len == strlen(cred_header) &&
                   c->cur_name_len <= sizeof c->cur_name &&
                   strncasecmp(c->cur_name, cred_header, c->cur_name_len) == 0) {
            c->cur_dst = c->cred;
            c->cur_dst_len = &c->cred_len;
        }
        if (c->cur_dst && *c->cur_dst_len && *c->cur_dst_len < AE_MAX)
            c->cur_dst[(*c->cur_dst_len)++] = ','; /* another line of the same header */
    }
    for (size_t i = 0; c->cur_dst && i < len && *c->cur_dst_len < AE_MAX; i++)
        c->cur_dst[(*c->cur_dst_len)++] = at[i];
    for (size_t i = 0; i < len; i++) {
        if (c->cur_val_len < sizeof c->cur_val) c->cur_val[c->cur_val_len] = at[i];
        c->cur_val_len++;
    }
    if (c->p.echo && c->nhdrs > 0) {
        hdr_t *h = &c->hdrs[c->nhdrs - 1];
        if (!c->in_value) h->val_off = (uint32_t)c->hbuf_len;
        if (!hbuf_put(c, at, len)) {
            c->err_status = 431;
            return 1;
        }
        h->val_len += (uint32_t)len;
    }
    c->in_value = true;
    return 0;
}

static const char *reason(unsigned s)
{
    switch (s) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

static int on_headers_complete(http_parser *hp)
{
    conn_t *c = hp->data;
    ensure_params(c);
    if (c->in_value) end_header(c);
    c->in_value = false;
    c->hdr_started = false; /* trailers, if any, start new entries */
    c->head = hp->method == HTTP_HEAD;
    c->http10 = hp->http_major == 0 || (hp->http_major == 1 && hp->http_minor == 0);
    if (c->expect_continue && !c->http10 && !c->p.close && !c->p.hang) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        wreq_t *wr = wreq_get(c, sizeof cont);
        if (!wr) return 1;
        memcpy(wr->buf, cont, sizeof cont - 1);
        wr->len = sizeof cont - 1;
        submit(c, wr, 0, 0, NULL, 0);
    }
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    conn_t *c = hp->data;
    c->body_bytes += len;
    if (c->p.echo && !EVP_DigestUpdate(c->sha, at, len)) return 1;
    if (c->p.ai && !c->ai_too_big) {
        if (len > AI_BODY_MAX - c->ai_req_len) {
            c->ai_too_big = true; /* answered with 413 once the whole request is in */
            return 0;
        }
        if (c->ai_req_len + len > c->ai_req_cap) {
            size_t cap = c->ai_req_cap ? c->ai_req_cap : 4096;
            while (cap < c->ai_req_len + len)
                cap *= 2;
            char *nb = realloc(c->ai_req, cap);
            if (!nb) return 1;
            c->ai_req = nb;
            c->ai_req_cap = cap;
        }
        memcpy(c->ai_req + c->ai_req_len, at, len);
        c->ai_req_len += len;
    }
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    conn_t *c = hp->data;
    c->keep_alive = http_should_keep_alive(hp);
    http_parser_pause(hp, 1); /* parse_input() answers, then resumes */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- responses ---- */

/* Appends the status line and the headers common to every response. */
static void put_head(conn_t *c, sb_t *b, unsigned status, const char *ctype)
{
    sb_str(b, "HTTP/1.1 ");
    sb_u64(b, status, 10);
    sb_put(b, " ", 1);
    sb_str(b, reason(status));
    sb_str(b, "\r\nContent-Type: ");
    sb_str(b, ctype);
    sb_str(b, "\r\n");
    if (c->cred_line) {
        sb_str(b, "x-mock-credential: ");
        sb_u64(b, c->cred_line, 10);
        sb_str(b, "\r\n");
    }
    if (!c->keep_alive)
        sb_str(b, "Connection: close\r\n");
    else if (c->http10)
        sb_str(b, "Connection: keep-alive\r\n");
}

static void finish_response(conn_t *c)
{
    free(c->echo_json);
    c->echo_json = NULL;
    ai_free_response(c);
    if (c->ai_req_cap > 64 * 1024) { /* a big body's buffer is not kept for the next one */
        free(c->ai_req);
        c->ai_req = NULL;
        c->ai_req_cap = 0;
    }
    c->body_mem = NULL;
    if (c->state == ST_CLOSED) return;
    if (!c->keep_alive) {
        conn_shutdown(c);
        return;
    }
    c->state = ST_READING;
    if (!c->in_parse) parse_input(c);
}

static void send_error(conn_t *c, unsigned status)
{
    static const char body[] = "{\"error\":\"bad request\"}";
    wreq_t *wr = wreq_get(c, 256);
    if (!wr) {
        conn_close(c);
        return;
    }
    sb_t b = {wr->buf, 0, wr->cap};
    c->keep_alive = false;
    c->http10 = false;
    put_head(c, &b, status, "application/json");
    sb_str(&b, "Content-Length: ");
    sb_u64(&b, sizeof body - 1, 10);
    sb_str(&b, "\r\n\r\n");
    sb_put(&b, body, sizeof body - 1);
    wr->len = b.len;
    submit(c, wr, 0, 0, NULL, 0);
    conn_shutdown(c);
}

/* Non-UTF-8 bytes (legal in header values) are taken as Latin-1, so echo never fails. */
static json_t *jstr(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j) return j;
    char *t = malloc(n * 2 + 1);
    if (!t) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80) {
            t[k++] = (char)ch;
        } else {
            t[k++] = (char)(0xC0 | (ch >> 6));
            t[k++] = (char)(0x80 | (ch & 0x3F));
        }
    }
    j = json_stringn(t, k);
    free(t);
    return j;
}

static char *build_echo(conn_t *c)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (!EVP_DigestFinal_ex(c->sha, md, &mdlen)) return NULL;
    for (unsigned i = 0; i < mdlen; i++) {
        hex[2 * i] = "0123456789abcdef"[md[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
    }
    hex[2 * mdlen] = 0;

    json_t *o = json_object(), *hs = json_object();
    char *out = NULL;
    if (!o || !hs) goto done;
    json_object_set_new(o, "method", json_string(http_method_str(c->parser.method)));
    json_object_set_new(o, "path", jstr(c->url, c->url_len));
    for (size_t i = 0; i < c->nhdrs; i++) {
        const hdr_t *h = &c->hdrs[i];
        const char *name = c->hbuf + h->name_off, *val = c->hbuf + h->val_off;
        json_t *prev = json_object_getn(hs, name, h->name_len);
        if (!prev) {
            json_object_setn_new(hs, name, h->name_len, jstr(val, h->val_len));
            continue;
        }
        /* repeated header: values joined with ", " as an HTTP intermediary may */
        size_t plen = json_string_length(prev);
        json_t *add = jstr(val, h->val_len);
        char *joined = add ? malloc(plen + 2 + json_string_length(add) + 1) : NULL;
        if (joined) {
            memcpy(joined, json_string_value(prev), plen);
            memcpy(joined + plen, ", ", 2);
            memcpy(joined + plen + 2, json_string_value(add), json_string_length(add));
            json_object_setn_new(hs, name, h->name_len,
                                 json_stringn(joined, plen + 2 + json_string_length(add)));
        }
        free(joined);
        json_decref(add);
    }
    json_object_set(o, "headers", hs);
    json_object_set_new(o, "body_bytes", json_integer((json_int_t)c->body_bytes));
    json_object_set_new(o, "body_sha256", json_string(hex));
    out = json_dumps(o, JSON_COMPACT);
done:
    json_decref(hs);
    json_decref(o);
    return out;
}

/* ---- AI endpoints ---- */

/* A growing output buffer; oom is sticky and checked once, at the end. */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} dbuf_t;

static void db_put(dbuf_t *d, const void *s, size_t n)
{
    if (d->oom || n == 0) return;
    if (d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap : 1024;
        while (cap < d->len + n)
            cap *= 2;
        char *np = realloc(d->p, cap);
        if (!np) {
            d->oom = true;
            return;
        }
        d->p = np;
        d->cap = cap;
    }
    memcpy(d->p + d->len, s, n);
    d->len += n;
}

static void db_str(dbuf_t *d, const char *s)
{
    db_put(d, s, strlen(s));
}

/* Appends j as compact JSON and releases j. jansson writes keys in insertion order, which
 * is what makes "usage":null the last key of a chunk. `cut` drops the last byte
 * (mock-bad-json). A NULL j (a failed allocation) marks the buffer oom. */
static void db_json(dbuf_t *d, json_t *j, bool cut)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        d->oom = true;
        return;
    }
    size_t n = strlen(s);
    db_put(d, s, cut && n > 0 ? n - 1 : n);
    free(s);
}

/* Events of a stream, back to back in d; offs[0] = 0 and offs[i + 1] ends event i. */
typedef struct {
    dbuf_t d;
    size_t *offs;
    size_t n, cap; /* entries in offs: events + 1 */
} events_t;

static void ev_end(events_t *e)
{
    if (e->d.oom) return;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        size_t *no = realloc(e->offs, cap * sizeof *no);
        if (!no) {
            e->d.oom = true;
            return;
        }
        e->offs = no;
        e->cap = cap;
    }
    e->offs[e->n++] = e->d.len;
}

/* `data: JSON` (OpenAI chat and completions chunks). */
static void ev_data(events_t *e, json_t *j, bool cut)
{
    db_str(&e->d, "data: ");
    db_json(&e->d, j, cut);
    db_str(&e->d, "\n\n");
    ev_end(e);
}

/* `event: NAME` + `data: JSON` (Responses API, Anthropic). */
static void ev_named(events_t *e, const char *name, json_t *j, bool cut)
{
    db_str(&e->d, "event: ");
    db_str(&e->d, name);
    db_str(&e->d, "\ndata: ");
    db_json(&e->d, j, cut);
    db_str(&e->d, "\n\n");
    ev_end(e);
}

/* One parsed AI request and the usage its response reports. */
typedef struct {
    ai_kind_t kind;
    json_t *root;
    const char *model;
    EVP_MD_CTX *md;      /* endpoint, model, prompt text, output count: the ids */
    uint64_t text_bytes; /* prompt text */
    bool stream, include_usage, cache_key, cache_control, no_usage, bad_json, b64;
    int64_t in, out, cached, cache_write;
    int64_t dims;
    char id[48];      /* the object's id: prefix + 24 hex digits */
    char item_id[32]; /* Responses API: the output message's id */
    dbuf_t text;      /* the whole output text: "tok0 tok1 ..." */
} ai_t;

static void add_text(ai_t *a, const char *s, size_t n)
{
    a->text_bytes += n;
    (void)EVP_DigestUpdate(a->md, s, n);
}

/* A token id in a prompt counts as 4 bytes, i.e. one token. */
static void add_token_id(ai_t *a, json_int_t v)
{
    a->text_bytes += 4;
    (void)EVP_DigestUpdate(a->md, &v, sizeof v);
}

/* A message content: a string, or an array of blocks of which "text" counts (other kinds,
 * e.g. images, add nothing). Notes any cache_control. Returns an error message or NULL. */
static const char *add_content(ai_t *a, json_t *content)
{
    size_t i;
    json_t *b;
    if (!content || json_is_null(content)) return NULL;
    if (json_is_string(content)) {
        add_text(a, json_string_value(content), json_string_length(content));
        return NULL;
    }
    if (!json_is_array(content)) return "content must be a string or an array of content blocks";
    json_array_foreach(content, i, b)
    {
        if (!json_is_object(b)) return "each content block must be an object";
        json_t *t = json_object_get(b, "text"), *cc = json_object_get(b, "cache_control");
        if (t && !json_is_string(t)) return "a content block's text must be a string";
        if (t) add_text(a, json_string_value(t), json_string_length(t));
        if (cc && !json_is_null(cc)) a->cache_control = true;
    }
    return NULL;
}

static const char *add_messages(ai_t *a, json_t *msgs)
{
    size_t i;
    json_t *m;
    if (!json_is_array(msgs)) return "messages must be an array";
    json_array_foreach(msgs, i, m)
    {
        if (!json_is_object(m)) return "each message must be an object";
        const char *err = add_content(a, json_object_get(m, "content"));
        if (err) return err;
    }
    return NULL;
}

/* Legacy completions' prompt: a string, token ids, or an array of either. */
static const char *add_prompt(ai_t *a, json_t *p)
{
    size_t i, k;
    json_t *x, *y;
    if (json_is_string(p)) {
        add_text(a, json_string_value(p), json_string_length(p));
        return NULL;
    }
    if (!json_is_array(p)) return "prompt must be a string or an array";
    json_array_foreach(p, i, x)
    {
        if (json_is_string(x)) {
            add_text(a, json_string_value(x), json_string_length(x));
        } else if (json_is_integer(x)) {
            add_token_id(a, json_integer_value(x));
        } else if (json_is_array(x)) {
            json_array_foreach(x, k, y)
            {
                if (!json_is_integer(y)) return "token arrays must hold integers";
                add_token_id(a, json_integer_value(y));
            }
        } else {
            return "prompt items must be strings or token arrays";
        }
    }
    return NULL;
}

/* Responses API input: a string or an array of items whose content counts. */
static const char *add_input_items(ai_t *a, json_t *in)
{
    size_t i;
    json_t *item;
    if (json_is_string(in)) {
        add_text(a, json_string_value(in), json_string_length(in));
        return NULL;
    }
    if (!json_is_array(in)) return "input must be a string or an array of input items";
    json_array_foreach(in, i, item)
    {
        if (!json_is_object(item)) return "each input item must be an object";
        const char *err = add_content(a, json_object_get(item, "content"));
        if (err) return err;
    }
    return NULL;
}

/* Output tokens from the first present of two fields, capped; AI_OUT_DEF when neither. */
static const char *set_out(ai_t *a, const char *f1, const char *f2)
{
    json_t *v = json_object_get(a->root, f1);
    if ((!v || json_is_null(v)) && f2) v = json_object_get(a->root, f2);
    if (!v || json_is_null(v)) {
        a->out = AI_OUT_DEF;
        return NULL;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return "the maximum output tokens must be a non-negative integer";
    a->out = json_integer_value(v) > AI_OUT_MAX ? AI_OUT_MAX : json_integer_value(v);
    return NULL;
}

/* Embeddings: the inputs, one vector each (a flat token array is one input). */
static const char *embed_inputs(ai_t *a, json_t *in, json_t **items)
{
    size_t i, k;
    json_t *x, *y;
    *items = json_array();
    if (!*items) return "out of memory";
    if (json_is_string(in) ||
        (json_is_array(in) && json_array_size(in) > 0 && json_is_integer(json_array_get(in, 0)))) {
        json_array_append(*items, in);
    } else if (json_is_array(in) && json_array_size(in) > 0) {
        json_array_foreach(in, i, x)
        {
            json_array_append(*items, x);
        }
    } else {
        return "input must be a non-empty string or array";
    }
    if (json_array_size(*items) > AI_INPUTS_MAX) return "too many inputs (at most 2048)";
    json_array_foreach(*items, i, x)
    {
        if (json_is_string(x)) {
            add_text(a, json_string_value(x), json_string_length(x));
        } else if (json_is_array(x)) {
            json_array_foreach(x, k, y)
            {
                if (!json_is_integer(y)) return "token arrays must hold integers";
                add_token_id(a, json_integer_value(y));
            }
        } else {
            return "each input must be a string or a token array";
        }
    }
    return NULL;
}

static void tok_str(char *buf, size_t cap, int64_t i)
{
    snprintf(buf, cap, "tok%" PRId64 " ", i);
}

static json_t *text_json(const ai_t *a)
{
    return json_stringn(a->text.p ? a->text.p : "", a->text.len);
}

/* -- OpenAI chat completions -- */

static json_t *chat_usage(const ai_t *a)
{
    return json_pack("{s:I,s:I,s:I,s:{s:I},s:{s:i}}", "prompt_tokens", (json_int_t)a->in,
                     "completion_tokens", (json_int_t)a->out, "total_tokens",
                     (json_int_t)(a->in + a->out), "prompt_tokens_details", "cached_tokens",
                     (json_int_t)a->cached, "completion_tokens_details", "reasoning_tokens", 0);
}

/* The keys every chunk starts with; choices (stolen) next, then "usage":null last when
 * include_usage asked for it, as OpenAI does. */
static json_t *chat_chunk(const ai_t *a, json_t *choices)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:o}", "id", a->id, "object",
                          "chat.completion.chunk", "created", (json_int_t)AI_CREATED, "model",
                          a->model, "system_fingerprint", "fp_mock", "choices", choices);
    if (o && a->include_usage && !a->no_usage) json_object_set_new(o, "usage", json_null());
    return o;
}

static json_t *chat_choice(json_t *delta, const char *finish)
{
    return json_pack("[{s:i,s:o,s:n,s:o}]", "index", 0, "delta", delta, "logprobs", "finish_reason",
                     finish ? json_string(finish) : json_null());
}

static void chat_stream(const ai_t *a, events_t *e)
{
    char tok[32];
    ev_data(e,
            chat_chunk(
                a, chat_choice(json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL)),
            a->bad_json);
    for (int64_t i = 0; i < a->out && !e->d.oom; i++) {
        tok_str(tok, sizeof tok, i);
        ev_data(e, chat_chunk(a, chat_choice(json_pack("{s:s}", "content", tok), NULL)),
                a->bad_json);
    }
    ev_data(e, chat_chunk(a, chat_choice(json_object(), "stop")), a->bad_json);
    if (a->include_usage && !a->no_usage)
        ev_data(e,
                json_pack("{s:s,s:s,s:I,s:s,s:s,s:[],s:o}", "id", a->id, "object",
                          "chat.completion.chunk", "created", (json_int_t)AI_CREATED, "model",
                          a->model, "system_fingerprint", "fp_mock", "choices", "usage",
                          chat_usage(a)),
                a->bad_json);
    db_str(&e->d, "data: [DONE]\n\n");
    ev_end(e);
}

static json_t *chat_body(const ai_t *a)
{
    json_t *o =
        json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:o,s:n,s:[]},s:n,s:s}]}", "id", a->id, "object",
                  "chat.completion", "created", (json_int_t)AI_CREATED, "model", a->model,
                  "choices", "index", 0, "message", "role", "assistant", "content", text_json(a),
                  "refusal", "annotations", "logprobs", "finish_reason", "stop");
    if (o && !a->no_usage) json_object_set_new(o, "usage", chat_usage(a));
    if (o) json_object_set_new(o, "system_fingerprint", json_string("fp_mock"));
    return o;
}

/* -- OpenAI legacy completions -- */

static json_t *cmpl_usage(const ai_t *a)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)a->in, "completion_tokens",
                     (json_int_t)a->out, "total_tokens", (json_int_t)(a->in + a->out));
}

static json_t *cmpl_chunk(const ai_t *a, json_t *text, const char *finish)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:[{s:o,s:i,s:n,s:o}]}", "id", a->id, "object",
                          "text_completion", "created", (json_int_t)AI_CREATED, "model", a->model,
                          "choices", "text", text, "index", 0, "logprobs", "finish_reason",
                          finish ? json_string(finish) : json_null());
    if (o && a->include_usage && !a->no_usage) json_object_set_new(o, "usage", json_null());
    return o;
}

static void cmpl_stream(const ai_t *a, events_t *e)
{
    char tok[32];
    for (int64_t i = 0; i < a->out && !e->d.oom; i++) {
        tok_str(tok, sizeof tok, i);
        ev_data(e, cmpl_chunk(a, json_string(tok), NULL), a->bad_json);
    }
    ev_data(e, cmpl_chunk(a, json_string(""), "stop"), a->bad_json);
    if (a->include_usage && !a->no_usage)
        ev_data(e,
                json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", a->id, "object", "text_completion",
                          "created", (json_int_t)AI_CREATED, "model", a->model, "choices", "usage",
                          cmpl_usage(a)),
                a->bad_json);
    db_str(&e->d, "data: [DONE]\n\n");
    ev_end(e);
}

static json_t *cmpl_body(const ai_t *a)
{
    json_t *o = cmpl_chunk(a, text_json(a), "stop");
    if (o) json_object_del(o, "usage");
    if (o && !a->no_usage) json_object_set_new(o, "usage", cmpl_usage(a));
    return o;
}

/* -- OpenAI embeddings -- */

/* Vector component j of an input whose SHA-256 is h: a multiple of 1/128 in [-1, 1), exact
 * in float32, so JSON and base64 say the same number. */
static float embed_value(const unsigned char *h, int64_t j)
{
    int v = (int)(h[j % 32] ^ (unsigned char)(j / 32 * 37)) - 128;
    return (float)v / 128.0f;
}

static json_t *embed_body(const ai_t *a, json_t *items)
{
    size_t i;
    json_t *x, *data = json_array();
    unsigned char *raw = malloc((size_t)a->dims * 4);
    char *b64 = malloc(((size_t)a->dims * 4 + 2) / 3 * 4 + 1);
    if (!data || !raw || !b64) goto fail;
    json_array_foreach(items, i, x)
    {
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned hl = 0;
        char *s = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s) goto fail;
        int ok = EVP_Digest(s, strlen(s), h, &hl, EVP_sha256(), NULL);
        free(s);
        if (!ok) goto fail;
        json_t *vec;
        if (a->b64) {
            for (int64_t j = 0; j < a->dims; j++) { /* little-endian float32, as the SDK reads */
                float f = embed_value(h, j);
                uint32_t u;
                memcpy(&u, &f, 4);
                for (int k = 0; k < 4; k++)
                    raw[j * 4 + k] = (unsigned char)(u >> (8 * k));
            }
            int n = EVP_EncodeBlock((unsigned char *)b64, raw, (int)(a->dims * 4));
            vec = json_stringn(b64, (size_t)n);
        } else {
            vec = json_array();
            for (int64_t j = 0; vec && j < a->dims; j++)
                json_array_append_new(vec, json_real(embed_value(h, j)));
        }
        if (json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index",
                                                  (json_int_t)i, "embedding", vec)) < 0)
            goto fail;
    }
    free(raw);
    free(b64);
    json_t *o = json_pack("{s:s,s:o,s:s}", "object", "list", "data", data, "model", a->model);
    if (o && !a->no_usage)
        json_object_set_new(o, "usage",
                            json_pack("{s:I,s:I}", "prompt_tokens", (json_int_t)a->in,
                                      "total_tokens", (json_int_t)a->in));
    return o;
fail:
    free(raw);
    free(b64);
    json_decref(data);
    return NULL;
}

/* -- OpenAI Responses API -- */

static json_t *resp_usage(const ai_t *a)
{
    return json_pack("{s:I,s:{s:I},s:I,s:{s:i},s:I}", "input_tokens", (json_int_t)a->in,
                     "input_tokens_details", "cached_tokens", (json_int_t)a->cached,
                     "output_tokens", (json_int_t)a->out, "output_tokens_details",
                     "reasoning_tokens", 0, "total_tokens", (json_int_t)(a->in + a->out));
}

static json_t *resp_part(json_t *text)
{
    return json_pack("{s:s,s:[],s:[],s:o}", "type", "output_text", "annotations", "logprobs",
                     "text", text);
}

static json_t *resp_item(const ai_t *a, const char *status, json_t *content)
{
    return json_pack("{s:s,s:s,s:s,s:o,s:s}", "id", a->item_id, "type", "message", "status", status,
                     "content", content, "role", "assistant");
}

/* The response object; usage null until completed, absent for mock-no-usage. */
static json_t *resp_object(const ai_t *a, const char *status, json_t *output, bool final)
{
    json_t *instr = json_object_get(a->root, "instructions");
    json_t *maxo = json_object_get(a->root, "max_output_tokens");
    json_t *o = json_pack(
        "{s:s,s:s,s:I,s:s,s:b,s:n,s:n,s:O,s:O,s:s,s:o,s:b,s:n,s:{s:n,s:n},s:b,s:f,s:{s:{s:s}},"
        "s:s,s:[],s:f,s:s}",
        "id", a->id, "object", "response", "created_at", (json_int_t)AI_CREATED, "status", status,
        "background", 0, "error", "incomplete_details", "instructions",
        json_is_string(instr) ? instr : json_null(), "max_output_tokens",
        json_is_integer(maxo) ? maxo : json_null(), "model", a->model, "output", output,
        "parallel_tool_calls", 1, "previous_response_id", "reasoning", "effort", "summary", "store",
        1, "temperature", 1.0, "text", "format", "type", "text", "tool_choice", "auto", "tools",
        "top_p", 1.0, "truncation", "disabled");
    if (o && !a->no_usage) json_object_set_new(o, "usage", final ? resp_usage(a) : json_null());
    /* The real API echoes the request's metadata, after the usage. */
    json_t *meta = json_object_get(a->root, "metadata");
    if (o)
        json_object_set_new(o, "metadata",
                            json_is_object(meta) ? json_deep_copy(meta) : json_object());
    return o;
}

static json_t *resp_body(const ai_t *a)
{
    return resp_object(
        a, "completed",
        json_pack("[o]", resp_item(a, "completed", json_pack("[o]", resp_part(text_json(a))))),
        true);
}

static void resp_stream(const ai_t *a, events_t *e)
{
    json_int_t seq = 0;
    char tok[32];
    const bool cut = a->bad_json;
    ev_named(e, "response.created",
             json_pack("{s:s,s:I,s:o}", "type", "response.created", "sequence_number", seq++,
                       "response", resp_object(a, "in_progress", json_array(), false)),
             cut);
    ev_named(e, "response.in_progress",
             json_pack("{s:s,s:I,s:o}", "type", "response.in_progress", "sequence_number", seq++,
                       "response", resp_object(a, "in_progress", json_array(), false)),
             cut);
    ev_named(e, "response.output_item.added",
             json_pack("{s:s,s:I,s:i,s:o}", "type", "response.output_item.added", "sequence_number",
                       seq++, "output_index", 0, "item", resp_item(a, "in_progress", json_array())),
             cut);
    ev_named(e, "response.content_part.added",
             json_pack("{s:s,s:I,s:s,s:i,s:i,s:o}", "type", "response.content_part.added",
                       "sequence_number", seq++, "item_id", a->item_id, "output_index", 0,
                       "content_index", 0, "part", resp_part(json_string(""))),
             cut);
    for (int64_t i = 0; i < a->out && !e->d.oom; i++) {
        tok_str(tok, sizeof tok, i);
        ev_named(e, "response.output_text.delta",
                 json_pack("{s:s,s:I,s:s,s:i,s:i,s:s,s:[]}", "type", "response.output_text.delta",
                           "sequence_number", seq++, "item_id", a->item_id, "output_index", 0,
                           "content_index", 0, "delta", tok, "logprobs"),
                 cut);
    }
    ev_named(e, "response.output_text.done",
             json_pack("{s:s,s:I,s:s,s:i,s:i,s:o,s:[]}", "type", "response.output_text.done",
                       "sequence_number", seq++, "item_id", a->item_id, "output_index", 0,
                       "content_index", 0, "text", text_json(a), "logprobs"),
             cut);
    ev_named(e, "response.content_part.done",
             json_pack("{s:s,s:I,s:s,s:i,s:i,s:o}", "type", "response.content_part.done",
                       "sequence_number", seq++, "item_id", a->item_id, "output_index", 0,
                       "content_index", 0, "part", resp_part(text_json(a))),
             cut);
    ev_named(e, "response.output_item.done",
             json_pack("{s:s,s:I,s:i,s:o}", "type", "response.output_item.done", "sequence_number",
                       seq++, "output_index", 0, "item",
                       resp_item(a, "completed", json_pack("[o]", resp_part(text_json(a))))),
             cut);
    ev_named(e, "response.completed",
             json_pack("{s:s,s:I,s:o}", "type", "response.completed", "sequence_number", seq++,
                       "response", resp_body(a)),
             cut);
}

/* -- Anthropic Messages API -- */

static json_t *msg_usage(const ai_t *a, int64_t out)
{
    return json_pack("{s:I,s:I,s:I,s:I}", "input_tokens", (json_int_t)a->in,
                     "cache_creation_input_tokens", (json_int_t)a->cache_write,
                     "cache_read_input_tokens", (json_int_t)a->cached, "output_tokens",
                     (json_int_t)out);
}

static json_t *msg_object(const ai_t *a, json_t *content, const char *stop, int64_t out)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:n}", "id", a->id, "type", "message", "role",
                          "assistant", "model", a->model, "content", content, "stop_reason",
                          stop ? json_string(stop) : json_null(), "stop_sequence");
    if (o && !a->no_usage) json_object_set_new(o, "usage", msg_usage(a, out));
    return o;
}

static json_t *msg_body(const ai_t *a)
{
    return msg_object(a, json_pack("[{s:s,s:o}]", "type", "text", "text", text_json(a)), "end_turn",
                      a->out);
}

static void msg_stream(const ai_t *a, events_t *e)
{
    char tok[32];
    const bool cut = a->bad_json;
    /* message_start's output_tokens is provisional (1), as the real API's is; the final,
     * cumulative count comes in message_delta. */
    ev_named(e, "message_start",
             json_pack("{s:s,s:o}", "type", "message_start", "message",
                       msg_object(a, json_array(), NULL, 1)),
             cut);
    ev_named(e, "content_block_start",
             json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_start", "index", 0,
                       "content_block", "type", "text", "text", ""),
             cut);
    ev_named(e, "ping", json_pack("{s:s}", "type", "ping"), cut);
    for (int64_t i = 0; i < a->out && !e->d.oom; i++) {
        tok_str(tok, sizeof tok, i);
        ev_named(e, "content_block_delta",
                 json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_delta", "index", 0,
                           "delta", "type", "text_delta", "text", tok),
                 cut);
    }
    ev_named(e, "content_block_stop",
             json_pack("{s:s,s:i}", "type", "content_block_stop", "index", 0), cut);
    json_t *d = json_pack("{s:s,s:{s:s,s:n}}", "type", "message_delta", "delta", "stop_reason",
                          "end_turn", "stop_sequence");
    if (d && !a->no_usage)
        json_object_set_new(d, "usage", json_pack("{s:I}", "output_tokens", (json_int_t)a->out));
    ev_named(e, "message_delta", d, cut);
    ev_named(e, "message_stop", json_pack("{s:s}", "type", "message_stop"), cut);
}

/* -- request handling -- */

static void ai_free_response(conn_t *c)
{
    free(c->ai_hdrs);
    free(c->ai_out);
    free(c->ai_offs);
    c->ai_hdrs = c->ai_out = NULL;
    c->ai_offs = NULL;
    c->ai_out_len = 0;
    c->ai_status = 0;
}

/* x-mock-usage: the numbers the body reports (or would have). Owned by the caller. */
static char *usage_header(const ai_t *a, bool zero)
{
    json_t *u = json_pack("{s:s,s:I,s:I,s:I,s:I}", "model", a->model, "input",
                          (json_int_t)(zero ? 0 : a->in), "output", (json_int_t)(zero ? 0 : a->out),
                          "cached", (json_int_t)(zero ? 0 : a->cached), "cache_write",
                          (json_int_t)(zero ? 0 : a->cache_write));
    char *j = u ? json_dumps(u, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(u);
    if (!j) return NULL;
    size_t n = strlen(j) + sizeof "x-mock-usage: \r\n";
    char *h = malloc(n);
    if (h) snprintf(h, n, "x-mock-usage: %s\r\n", j);
    free(j);
    return h;
}

/* An error in the API's own shape. hdrs (owned, may be NULL) become the extra headers. */
static int ai_error(conn_t *c, unsigned status, const char *msg, char *hdrs)
{
    json_t *o;
    if (c->p.ai == AI_MESSAGES)
        o = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
                      status == 413 ? "request_too_large" : "invalid_request_error", "message",
                      msg);
    else
        o = json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", msg, "type",
                      "invalid_request_error", "param", "code");
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!hdrs) hdrs = strdup("");
    if (!body || !hdrs) {
        free(body);
        free(hdrs);
        return -1;
    }
    c->ai_status = status;
    c->ai_ctype = "application/json";
    c->ai_hdrs = hdrs;
    c->ai_out = body;
    c->ai_out_len = strlen(body);
    return 0;
}

/* Parses the buffered request and generates the whole response into c->ai_*. -1 only when
 * out of memory; a bad request is a 400 response. */
static int ai_prepare(conn_t *c)
{
    ai_t a = {.kind = c->p.ai};
    json_error_t jerr;
    json_t *items = NULL;
    const char *err = NULL;
    char msg[256];
    int rc = -1;

    if (c->ai_too_big) return ai_error(c, 413, "request body over 8 MiB", NULL);
    a.root = json_loadb(c->ai_req ? c->ai_req : "", c->ai_req_len, 0, &jerr);
    if (!json_is_object(a.root)) {
        snprintf(msg, sizeof msg, "request body is not a JSON object%s%s", a.root ? "" : ": ",
                 a.root ? "" : jerr.text);
        rc = ai_error(c, 400, msg, NULL);
        goto done;
    }
    json_t *model = json_object_get(a.root, "model");
    if (!json_is_string(model) || json_string_length(model) == 0 ||
        json_string_length(model) > AI_MODEL_MAX ||
        strlen(json_string_value(model)) != json_string_length(model)) {
        rc = ai_error(c, 400, "model must be a non-empty string of at most 256 bytes", NULL);
        goto done;
    }
    a.model = json_string_value(model);
    if (!(a.md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(a.md, EVP_sha256(), NULL)) goto done;
    unsigned char kb = (unsigned char)a.kind;
    (void)EVP_DigestUpdate(a.md, &kb, 1);
    (void)EVP_DigestUpdate(a.md, a.model, strlen(a.model) + 1);

    json_t *root = a.root;
    switch (a.kind) {
    case AI_CHAT:
        err = add_messages(&a, json_object_get(root, "messages"));
        if (!err) err = set_out(&a, "max_completion_tokens", "max_tokens");
        break;
    case AI_COMPLETIONS:
        err = add_prompt(&a, json_object_get(root, "prompt"));
        if (!err) err = set_out(&a, "max_tokens", NULL);
        break;
    case AI_EMBEDDINGS: {
        err = embed_inputs(&a, json_object_get(root, "input"), &items);
        json_t *fmt = json_object_get(root, "encoding_format"),
               *dims = json_object_get(root, "dimensions");
        if (!err && fmt && !json_is_null(fmt)) {
            if (json_is_string(fmt) && strcmp(json_string_value(fmt), "base64") == 0)
                a.b64 = true;
            else if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "float") != 0)
                err = "encoding_format must be \"float\" or \"base64\"";
        }
        a.dims = AI_DIMS_DEF;
        if (!err && dims && !json_is_null(dims)) {
            if (!json_is_integer(dims) || json_integer_value(dims) < 1 ||
                json_integer_value(dims) > AI_DIMS_MAX)
                err = "dimensions must be an integer from 1 to 4096";
            else
                a.dims = json_integer_value(dims);
        }
        a.out = 0;
        break;
    }
    case AI_RESPONSES: {
        json_t *in = json_object_get(root, "input"), *instr = json_object_get(root, "instructions");
        if (json_is_string(instr))
            add_text(&a, json_string_value(instr), json_string_length(instr));
        err = add_input_items(&a, in);
        if (!err) err = set_out(&a, "max_output_tokens", NULL);
        break;
    }
    case AI_MESSAGES:
        err = add_content(&a, json_object_get(root, "system"));
        if (!err) err = add_messages(&a, json_object_get(root, "messages"));
        if (!err) err = set_out(&a, "max_tokens", NULL);
        break;
    case AI_NONE: break;
    }
    if (err) {
        rc = ai_error(c, 400, err, NULL);
        goto done;
    }
    a.stream = a.kind != AI_EMBEDDINGS && json_is_true(json_object_get(root, "stream"));
    a.include_usage =
        (a.kind == AI_CHAT || a.kind == AI_COMPLETIONS) &&
        json_is_true(json_object_get(json_object_get(root, "stream_options"), "include_usage"));
    a.cache_key = (a.kind == AI_CHAT || a.kind == AI_RESPONSES) &&
                  json_is_string(json_object_get(root, "prompt_cache_key"));
    a.no_usage = strcmp(a.model, "mock-no-usage") == 0;
    a.bad_json = strcmp(a.model, "mock-bad-json") == 0;

    int64_t t = (int64_t)((a.text_bytes + 3) / 4);
    if (a.kind == AI_MESSAGES && a.cache_control) {
        a.cached = t / 2;
        a.cache_write = t / 4;
        a.in = t - a.cached - a.cache_write;
    } else {
        a.in = t;
        a.cached = a.cache_key ? t / 2 : 0;
    }

    /* ids: same prompt, same ids, whatever stream_options or other fields say */
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hl = 0;
    char hex[25];
    (void)EVP_DigestUpdate(a.md, &a.out, sizeof a.out);
    if (!EVP_DigestFinal_ex(a.md, h, &hl)) goto done;
    for (int i = 0; i < 12; i++) {
        hex[2 * i] = "0123456789abcdef"[h[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[h[i] & 15];
    }
    hex[24] = 0;
    static const char *const prefix[] = {
        [AI_NONE] = "",       [AI_CHAT] = "chatcmpl-",  [AI_COMPLETIONS] = "cmpl-",
        [AI_EMBEDDINGS] = "", [AI_RESPONSES] = "resp_", [AI_MESSAGES] = "msg_",
    };
    snprintf(a.id, sizeof a.id, "%s%s", prefix[a.kind], hex);
    snprintf(a.item_id, sizeof a.item_id, "msg_%s", hex);

    char *hdrs = usage_header(&a, strcmp(a.model, "mock-error") == 0);
    if (!hdrs) goto done;
    if (strcmp(a.model, "mock-error") == 0) {
        rc = ai_error(c, 400, "mock-error: this model always fails", hdrs);
        goto done;
    }

    char tok[32];
    for (int64_t i = 0; i < a.out; i++) {
        tok_str(tok, sizeof tok, i);
        db_str(&a.text, tok);
    }
    if (a.stream) {
        events_t e = {0};
        ev_end(&e); /* offs[0] = 0 */
        switch (a.kind) {
        case AI_CHAT: chat_stream(&a, &e); break;
        case AI_COMPLETIONS: cmpl_stream(&a, &e); break;
        case AI_RESPONSES: resp_stream(&a, &e); break;
        case AI_MESSAGES: msg_stream(&a, &e); break;
        default: break;
        }
        if (e.d.oom || a.text.oom || e.n < 2) {
            free(e.d.p);
            free(e.offs);
            free(hdrs);
            goto done;
        }
        c->ai_ctype = "text/event-stream; charset=utf-8";
        c->ai_out = e.d.p;
        c->ai_out_len = e.d.len;
        c->ai_offs = e.offs;
        c->nchunks = e.n - 1;
    } else {
        json_t *body = NULL;
        switch (a.kind) {
        case AI_CHAT: body = chat_body(&a); break;
        case AI_COMPLETIONS: body = cmpl_body(&a); break;
        case AI_EMBEDDINGS: body = embed_body(&a, items); break;
        case AI_RESPONSES: body = resp_body(&a); break;
        case AI_MESSAGES: body = msg_body(&a); break;
        case AI_NONE: break;
        }
        dbuf_t d = {0};
        db_json(&d, body, a.bad_json);
        if (d.oom || a.text.oom) {
            free(d.p);
            free(hdrs);
            goto done;
        }
        c->ai_ctype = "application/json";
        c->ai_out = d.p;
        c->ai_out_len = d.len;
    }
    c->ai_hdrs = hdrs;
    c->ai_status = 200;
    rc = 0;
done:
    free(a.text.p);
    json_decref(items);
    json_decref(a.root);
    if (a.md) EVP_MD_CTX_free(a.md);
    return rc;
}

/* ---- content codings of AI answers ---- */

typedef enum { E_NONE, E_GZIP, E_ZLIB, E_RAW, E_BR, E_ZSTD } ecoding_t;

typedef struct {
    ecoding_t kind;
    z_stream zs;
    BrotliEncoderState *br;
    ZSTD_CCtx *zc;
} encoder_t;

static int enc_init(encoder_t *e, ecoding_t kind)
{
    memset(e, 0, sizeof *e);
    e->kind = kind;
    switch (kind) {
    case E_GZIP:
    case E_ZLIB:
    case E_RAW:
        return deflateInit2(&e->zs, 6, Z_DEFLATED,
                            kind == E_GZIP   ? 15 + 16
                            : kind == E_ZLIB ? 15
                                             : -15,
                            8, Z_DEFAULT_STRATEGY) == Z_OK
                   ? 0
                   : -1;
    case E_BR:
        if (!(e->br = BrotliEncoderCreateInstance(NULL, NULL, NULL))) return -1;
        BrotliEncoderSetParameter(e->br, BROTLI_PARAM_QUALITY, 5);
        return 0;
    case E_ZSTD: return (e->zc = ZSTD_createCCtx()) ? 0 : -1;
    default: return -1;
    }
}

static void enc_end(encoder_t *e)
{
    if (e->kind == E_GZIP || e->kind == E_ZLIB || e->kind == E_RAW) deflateEnd(&e->zs);
    if (e->br) BrotliEncoderDestroyInstance(e->br);
    ZSTD_freeCCtx(e->zc);
}

/* Compresses n bytes into out; flush: make everything so far decodable (an event's end);
 * last: end the stream. */
static void enc_put(encoder_t *e, const char *in, size_t n, bool flush, bool last, dbuf_t *out)
{
    unsigned char buf[16384];
    if (e->kind == E_BR) {
        size_t ain = n;
        const uint8_t *nin = (const uint8_t *)in;
        BrotliEncoderOperation op = last    ? BROTLI_OPERATION_FINISH
                                    : flush ? BROTLI_OPERATION_FLUSH
                                            : BROTLI_OPERATION_PROCESS;
        do {
            size_t aout = sizeof buf;
            uint8_t *nout = buf;
            if (!BrotliEncoderCompressStream(e->br, op, &ain, &nin, &aout, &nout, NULL)) {
                out->oom = true;
                return;
            }
            db_put(out, buf, sizeof buf - aout);
        } while (ain || BrotliEncoderHasMoreOutput(e->br) ||
                 (last && !BrotliEncoderIsFinished(e->br)));
        return;
    }
    if (e->kind == E_ZSTD) {
        ZSTD_inBuffer ib = {in, n, 0};
        ZSTD_EndDirective op = last ? ZSTD_e_end : flush ? ZSTD_e_flush : ZSTD_e_continue;
        for (;;) {
            ZSTD_outBuffer ob = {buf, sizeof buf, 0};
            size_t r = ZSTD_compressStream2(e->zc, &ob, &ib, op);
            if (ZSTD_isError(r)) {
                out->oom = true;
                return;
            }
            db_put(out, buf, ob.pos);
            if (op == ZSTD_e_continue ? ib.pos == ib.size : r == 0) return;
        }
    }
    e->zs.next_in = (Bytef *)in;
    e->zs.avail_in = (uInt)n;
    int zf = last ? Z_FINISH : flush ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    do {
        e->zs.next_out = buf;
        e->zs.avail_out = sizeof buf;
        if (deflate(&e->zs, zf) == Z_STREAM_ERROR) {
            out->oom = true;
            return;
        }
        db_put(out, buf, sizeof buf - e->zs.avail_out);
    } while (e->zs.avail_out == 0 || e->zs.avail_in > 0);
}

static bool tok_eq(const char *t, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(t, lit, n) == 0;
}

/* The coding the request's Accept-Encoding picks (see usage): E_NONE when none. */
static ecoding_t pick_coding(const conn_t *c)
{
    static const char *const names[] = {"gzip", "deflate", "br", "zstd"};
    static const ecoding_t kinds[] = {E_GZIP, E_ZLIB, E_BR, E_ZSTD};
    ecoding_t best = E_NONE;
    double bq = 0;
    const char *p = c->ae, *end = c->ae + c->ae_len;
    while (p < end) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        if (!e) e = end;
        const char *t = p;
        while (t < e && (*t == ' ' || *t == '\t'))
            t++;
        const char *te = t;
        while (te < e && *te != ';' && *te != ' ' && *te != '\t')
            te++;
        double q = 1;
        const char *qp = memchr(te, ';', (size_t)(e - te));
        while (qp && qp < e) {
            qp++;
            while (qp < e && *qp == ' ')
                qp++;
            if (e - qp > 2 && (qp[0] == 'q' || qp[0] == 'Q') && qp[1] == '=')
                q = strtod(qp + 2, NULL);
            qp = memchr(qp, ';', (size_t)(e - qp));
        }
        for (size_t i = 0; i < 4; i++)
            if (tok_eq(t, (size_t)(te - t), names[i]) && q > 0 &&
                (q > bq || (q == bq && kinds[i] == E_GZIP))) {
                best = kinds[i];
                bq = q;
            }
        p = e + 1;
    }
    return best;
}

/* Compresses the prepared AI answer in place when asked (see usage). -1 when out of
 * memory. */
static int ai_encode(conn_t *c)
{
    if (!c->ai_status) return 0;
    const bool streamed = c->ai_offs != NULL;
    ecoding_t kind = E_NONE;
    const char *label = NULL;
    bool corrupt = false;
    if (c->menc_len) {
        const char *m = c->menc;
        size_t n = c->menc_len;
        if (tok_eq(m, n, "gzip"))
            kind = E_GZIP;
        else if (tok_eq(m, n, "deflate"))
            kind = E_ZLIB;
        else if (tok_eq(m, n, "deflate-raw"))
            kind = E_RAW;
        else if (tok_eq(m, n, "br"))
            kind = E_BR;
        else if (tok_eq(m, n, "zstd"))
            kind = E_ZSTD;
        else if (tok_eq(m, n, "gzip-corrupt"))
            kind = E_GZIP, corrupt = true;
        else if (tok_eq(m, n, "identity"))
            return 0;
        else if (n > 8 && strncasecmp(m, "gzip-as-", 8) == 0)
            kind = E_GZIP, label = m + 8;
        else
            label = m; /* sent as it is, over the plain body */
    } else if (!compress_off && !streamed) {
        kind = pick_coding(c);
    }
    static const char *const names[] = {[E_GZIP] = "gzip",
                                        [E_ZLIB] = "deflate",
                                        [E_RAW] = "deflate",
                                        [E_BR] = "br",
                                        [E_ZSTD] = "zstd"};
    dbuf_t h = {0};
    db_str(&h, c->ai_hdrs);
    db_str(&h, "Content-Encoding: ");
    if (label)
        db_put(&h, label, c->menc_len - (size_t)(label - c->menc));
    else if (kind != E_NONE)
        db_str(&h, names[kind]);
    db_str(&h, "\r\nVary: Accept-Encoding\r\n");
    db_put(&h, "", 1);
    if (h.oom) {
        free(h.p);
        return -1;
    }
    if (kind == E_NONE && !label) {
        free(h.p); /* nothing accepted: identity, as the providers answer then */
        return 0;
    }
    free(c->ai_hdrs);
    c->ai_hdrs = h.p;
    if (label && kind == E_NONE) return 0;

    encoder_t e;
    if (enc_init(&e, kind) < 0) return -1;
    dbuf_t out = {0};
    if (streamed) {
        /* Each event flushed on its own, so a reader can decode it as it arrives. */
        size_t a = 0; /* (offs[0] is 0 either way) */
        for (size_t i = 0; i < c->nchunks; i++) {
            size_t b = c->ai_offs[i + 1];
            enc_put(&e, c->ai_out + a, b - a, true, i + 1 == c->nchunks, &out);
            a = b;
            c->ai_offs[i + 1] = out.len;
        }
    } else {
        char spaces[4096];
        memset(spaces, ' ', sizeof spaces);
        for (uint64_t left = c->mpad; left > 0 && !out.oom;) {
            size_t k = left > sizeof spaces ? sizeof spaces : (size_t)left;
            enc_put(&e, spaces, k, false, false, &out);
            left -= k;
        }
        enc_put(&e, c->ai_out, c->ai_out_len, false, true, &out);
    }
    enc_end(&e);
    if (out.oom) {
        free(out.p);
        return -1;
    }
    if (corrupt && out.len > 20) out.p[out.len / 2] ^= 0x5a;
    free(c->ai_out);
    c->ai_out = out.p;
    c->ai_out_len = out.len;
    return 0;
}

/* Sends a prepared AI response: the head with x-mock-usage, then the body or the events
 * (through pump(), x-mock-interval-ms apart). */
static void ai_send(conn_t *c)
{
    const bool streamed = c->ai_offs != NULL;
    const size_t inline_len = streamed ? 0 : c->ai_out_len;
    wreq_t *wr = wreq_get(c, 512 + strlen(c->ai_hdrs) + inline_len);
    if (!wr) {
        conn_close(c);
        return;
    }
    sb_t b = {wr->buf, 0, wr->cap};
    c->no_body = false;
    if (streamed) {
        c->te_chunked = !c->http10;
        if (!c->te_chunked) c->keep_alive = false; /* the body ends at our FIN */
    }
    put_head(c, &b, c->ai_status, c->ai_ctype);
    sb_str(&b, c->ai_hdrs);
    if (streamed) {
        sb_str(&b, "Cache-Control: no-cache\r\n");
        if (c->te_chunked) sb_str(&b, "Transfer-Encoding: chunked\r\n");
        sb_str(&b, "\r\n");
        wr->len = b.len;
        submit(c, wr, 0, 0, NULL, 0);
        c->streamed = true;
        c->chunk_i = 0;
        c->gap_ms = c->ai_interval_ms;
        c->gap_done = true; /* no wait before the first event */
        c->timer_wait = false;
        c->state = ST_STREAMING;
        pump(c);
        return;
    }
    sb_str(&b, "Content-Length: ");
    sb_u64(&b, c->ai_out_len, 10);
    sb_str(&b, "\r\n\r\n");
    if (c->ai_stall_after == 1 && c->ai_out_len >= 2) {
        /* x-mock-stall-after: 1 on a JSON answer: two halves, paced like a stream. */
        if (!(c->ai_offs = malloc(3 * sizeof *c->ai_offs))) {
            wreq_put(c->w, wr);
            conn_close(c);
            return;
        }
        c->ai_offs[0] = 0;
        c->ai_offs[1] = c->ai_out_len / 2;
        c->ai_offs[2] = c->ai_out_len;
        c->nchunks = 2;
        c->te_chunked = false;
        wr->len = b.len;
        submit(c, wr, 0, 0, NULL, 0);
        c->streamed = true;
        c->chunk_i = 0;
        c->gap_ms = 0;
        c->gap_done = true;
        c->timer_wait = false;
        c->state = ST_STREAMING;
        pump(c);
        return;
    }
    sb_put(&b, c->ai_out, inline_len);
    wr->len = b.len;
    submit(c, wr, 0, 0, NULL, 0);
    finish_response(c);
}

/* Sends the head and either the whole body or, when streamed, starts the pump. */
static void send_response(conn_t *c)
{
    if (c->ai_status) {
        ai_send(c);
        return;
    }
    const params_t *p = &c->p;
    unsigned status = p->status ? (unsigned)p->status : 200;
    const char *ctype = c->body_mem ? "application/json" : "text/plain";
    c->no_body = c->head || status == 204 || status == 304;
    c->streamed = !p->healthz && (p->has_sse || p->chunked > 0);
    wreq_t *wr;

    if (c->streamed) {
        c->te_chunked = !c->http10;
        if (!c->te_chunked) c->keep_alive = false; /* the body ends at our FIN */
        if (p->has_sse) {
            ctype = "text/event-stream";
            c->nchunks = p->sse + 1; /* events and [DONE] */
            c->gap_ms = p->interval_ms;
        } else {
            c->nchunks = p->chunked < c->body_len ? p->chunked : c->body_len;
            c->gap_ms = p->chunk_delay_ms;
        }
        c->chunk_i = 0;
        c->gap_done = true; /* no wait before the first chunk */
        c->timer_wait = false;
        if (!(wr = wreq_get(c, 512))) goto oom;
        sb_t b = {wr->buf, 0, wr->cap};
        put_head(c, &b, status, ctype);
        if (p->has_sse) sb_str(&b, "Cache-Control: no-cache\r\n");
        if (c->te_chunked && (c->head || !c->no_body)) sb_str(&b, "Transfer-Encoding: chunked\r\n");
        sb_str(&b, "\r\n");
        wr->len = b.len;
        submit(c, wr, 0, 0, NULL, 0);
        if (c->no_body) {
            finish_response(c);
            return;
        }
        c->state = ST_STREAMING;
        pump(c);
        return;
    }

    size_t inline_len = c->body_mem && !c->no_body ? (size_t)c->body_len : 0;
    if (!(wr = wreq_get(c, 512 + inline_len))) goto oom;
    sb_t b = {wr->buf, 0, wr->cap};
    put_head(c, &b, status, ctype);
    if (status != 204) {
        sb_str(&b, "Content-Length: ");
        sb_u64(&b, c->body_len, 10);
        sb_str(&b, "\r\n");
    }
    sb_str(&b, "\r\n");
    sb_put(&b, c->body_mem, inline_len);
    wr->len = b.len;
    submit(c, wr, 0, c->body_mem || c->no_body ? 0 : c->body_len, NULL, 0);
    finish_response(c);
    return;
oom:
    conn_close(c);
}

/* Produces chunks until done, a gap timer is needed, or too many writes are queued. */
static void pump(conn_t *c)
{
    while (c->state == ST_STREAMING && !c->timer_wait) {
        if (c->chunk_i == c->nchunks) {
            if (c->nchunks == 0 && c->te_chunked) { /* empty body: terminator only */
                wreq_t *wr = wreq_get(c, 8);
                if (!wr) {
                    conn_close(c);
                    return;
                }
                memcpy(wr->buf, "0\r\n\r\n", 5);
                wr->len = 5;
                submit(c, wr, 0, 0, NULL, 0);
            }
            finish_response(c);
            return;
        }
        if (c->inflight >= MAX_INFLIGHT) return; /* on_written() calls back */
        uint64_t gap = c->ai_offs && c->ai_stall_after && c->chunk_i == c->ai_stall_after
                           ? c->ai_stall_ms
                           : c->gap_ms;
        if (!c->gap_done && gap > 0) {
            c->timer_wait = true;
            uv_timer_start(&c->timer, on_timer, gap, 0);
            return;
        }
        bool last = c->chunk_i + 1 == c->nchunks;
        uint64_t off = 0, len;
        char ev[64];
        const char *mem;
        if (c->ai_offs) {
            mem = c->ai_out + c->ai_offs[c->chunk_i];
            len = c->ai_offs[c->chunk_i + 1] - c->ai_offs[c->chunk_i];
        } else if (c->p.has_sse) {
            if (last)
                len = (uint64_t)snprintf(ev, sizeof ev, "data: [DONE]\n\n");
            else
                len =
                    (uint64_t)snprintf(ev, sizeof ev, "data: {\"i\":%" PRIu64 "}\n\n", c->chunk_i);
            mem = ev;
        } else {
            off = c->chunk_i * c->body_len / c->nchunks;
            len = (c->chunk_i + 1) * c->body_len / c->nchunks - off;
            mem = c->body_mem ? c->body_mem + off : NULL;
        }
        char stamp[40];
        size_t stamp_len = 0;
        if (c->ai_offs && c->ai_stamp && c->p.ai == AI_CHAT) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
            stamp_len = (size_t)snprintf(stamp, sizeof stamp, "id: %" PRIu64 "\n", ns);
        }
        size_t inline_len = mem ? (size_t)len : 0;
        wreq_t *wr = wreq_get(c, 32 + stamp_len + inline_len + 8);
        if (!wr) {
            conn_close(c);
            return;
        }
        sb_t b = {wr->buf, 0, wr->cap};
        if (c->te_chunked) {
            sb_u64(&b, len + stamp_len, 16);
            sb_str(&b, "\r\n");
        }
        sb_put(&b, stamp, stamp_len);
        sb_put(&b, mem, inline_len);
        if (mem && c->te_chunked) sb_str(&b, last ? "\r\n0\r\n\r\n" : "\r\n");
        wr->len = b.len;
        const char *tail = NULL;
        size_t tail_len = 0;
        if (!mem && c->te_chunked) {
            tail = last ? "\r\n0\r\n\r\n" : chunk_end;
            tail_len = strlen(tail);
        }
        submit(c, wr, off, mem ? 0 : len, tail, tail_len);
        c->chunk_i++;
        c->gap_done = false;
    }
}

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    switch (c->state) {
    case ST_DELAY: send_response(c); break;
    case ST_STREAMING:
        c->timer_wait = false;
        c->gap_done = true;
        pump(c);
        break;
    case ST_LINGER: conn_close(c); break;
    default: break;
    }
}

/* Called with a complete request; sets c->state to what the connection does next. */
static void start_response(conn_t *c)
{
    const params_t *p = &c->p;
    if (c->p.healthz) {
        c->body_mem = ok_body;
        c->body_len = sizeof ok_body - 1;
        send_response(c);
        return;
    }
    if (naccept) {
        for (size_t i = 0; i < naccept && c->cred_len < AE_MAX; i++)
            if (strlen(accepted[i]) == c->cred_len && !memcmp(accepted[i], c->cred, c->cred_len))
                c->cred_line = accept_line[i];
        if (!c->cred_line) {
            send_error(c, 401);
            return;
        }
    }
    if (p->close) {
        conn_shutdown(c);
        return;
    }
    if (p->hang) {
        c->state = ST_HANGING;
        c->in_off = c->in_len = 0;
        return;
    }
    if (p->ai) {
        if (ai_prepare(c) < 0 || ai_encode(c) < 0) { /* out of memory */
            conn_close(c);
            return;
        }
    } else if (p->status && (p->status < 200 || p->status > 999)) {
        send_error(c, 400);
        return;
    } else if (p->echo) {
        if (!(c->echo_json = build_echo(c))) {
            conn_close(c);
            return;
        }
        c->body_mem = c->echo_json;
        c->body_len = strlen(c->echo_json);
    } else if (p->has_size || (p->chunked && !p->has_sse)) {
        c->body_mem = NULL;
        c->body_len = p->has_size ? p->size : 1000;
    } else {
        c->body_mem = ok_body;
        c->body_len = sizeof ok_body - 1;
    }
    if (p->delay_ms > 0) {
        c->state = ST_DELAY;
        uv_timer_start(&c->timer, on_timer, p->delay_ms, 0);
        return;
    }
    send_response(c);
}

/* Parses buffered input, answering each complete request in order. Stops while a response
 * is in progress; whoever ends that response calls here again. */
static void parse_input(conn_t *c)
{
    c->in_parse = true;
    while (c->state == ST_READING && c->in_off < c->in_len) {
        if (c->inflight >= MAX_INFLIGHT) {
            c->wait_drain = true;
            break;
        }
        size_t n =
            http_parser_execute(&c->parser, &settings, c->rbuf + c->in_off, c->in_len - c->in_off);
        c->in_off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            start_response(c);
            continue;
        }
        if (e != HPE_OK) {
            unsigned status = c->err_status              ? (unsigned)c->err_status
                              : e == HPE_HEADER_OVERFLOW ? 431
                                                         : 400;
            c->in_off = c->in_len = 0;
            send_error(c, status);
            break;
        }
    }
    if (c->in_off == c->in_len) c->in_off = c->in_len = 0;
    c->in_parse = false;
    if (c->state == ST_READING && c->eof && c->in_len == 0 && !c->wait_drain) {
        conn_shutdown(c);
        return;
    }
    if (c->state != ST_CLOSED) update_reading(c);
}

/* ---- workers ---- */

static void on_connection(uv_stream_t *server, int status)
{
    worker_t *w = server->data;
    if (status < 0) return;
    conn_t *c = malloc(sizeof *c);
    if (!c) {
        /* Without a handle the connection cannot even be accepted and dropped, and libuv
         * stops accepting until it is: a mock has no better answer than to stop. */
        fputs("mock-upstream: out of memory\n", stderr);
        exit(1);
    }
    memset(c, 0, offsetof(conn_t, url));
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = ST_READING;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    update_reading(c);
}

static void on_stop(uv_async_t *a)
{
    worker_t *w = a->data;
    for (conn_t *c = w->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&w->listener, NULL);
    uv_close((uv_handle_t *)&w->stop, NULL);
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    while (w->free_wreqs) {
        wreq_t *wr = w->free_wreqs;
        w->free_wreqs = wr->next;
        free(wr);
    }
}

/* The socket is made here, not by uv_tcp_bind, because libuv 1.44 cannot set SO_REUSEPORT. */
static int make_listener(const struct sockaddr *sa, socklen_t salen)
{
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 || bind(fd, sa, salen) < 0 ||
        listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int parse_listen(const char *s, struct sockaddr_storage *ss, char *host, size_t hostcap)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostcap) return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) return -1;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
    return -1;
}

/* --accept-credentials: every non-empty line of path (its CR/LF stripped), with its number. */
static int load_credentials(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mock-upstream: --accept-credentials %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[AE_MAX + 2];
    unsigned no = 0;
    while (fgets(line, sizeof line, f) && naccept < ACCEPT_MAX) {
        no++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!*line) continue;
        accept_line[naccept] = no;
        accepted[naccept++] = strdup(line);
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    const char *listen_at = "127.0.0.1:0", *port_file = NULL;
    long threads = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_at = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            threads = strtol(argv[++i], &end, 10);
            if (*end || threads < 1 || threads > 256) {
                fprintf(stderr, "mock-upstream: --threads wants 1..256\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc) {
            port_file = argv[++i];
        } else if (strcmp(argv[i], "--no-compress") == 0) {
            compress_off = true;
        } else if (strcmp(argv[i], "--accept-credentials") == 0 && i + 1 < argc) {
            if (load_credentials(argv[++i]) < 0) return 2;
        } else if (strcmp(argv[i], "--credential-header") == 0 && i + 1 < argc) {
            cred_header = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "mock-upstream: unknown argument \"%s\"\n%s", argv[i], usage);
            return 2;
        }
    }
    struct sockaddr_storage ss;
    char host[256];
    if (parse_listen(listen_at, &ss, host, sizeof host) < 0) {
        fprintf(stderr, "mock-upstream: bad --listen \"%s\" (want HOST:PORT)\n", listen_at);
        return 2;
    }
    socklen_t salen =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    for (size_t i = 0; i < sizeof filler; i++)
        filler[i] = filler_pattern[i % FILLER_PERIOD];

    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL); /* inherited: only sigwait() sees them */

    worker_t *ws = calloc((size_t)threads, sizeof *ws);
    if (!ws) return 1;
    int port = 0;
    for (long i = 0; i < threads; i++) {
        /* The first socket picks the port when 0 was asked for; the rest join it. */
        int fd = make_listener((struct sockaddr *)&ss, salen);
        if (fd < 0) {
            fprintf(stderr, "mock-upstream: listen on %s: %s\n", listen_at, strerror(errno));
            return 1;
        }
        if (i == 0) {
            struct sockaddr_storage bound;
            socklen_t bl = sizeof bound;
            getsockname(fd, (struct sockaddr *)&bound, &bl);
            port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                     : ((struct sockaddr_in *)&bound)->sin_port);
            if (ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
            else
                ((struct sockaddr_in *)&ss)->sin_port = htons(port);
        }
        worker_t *w = &ws[i];
        w->fd = fd;
        if (uv_loop_init(&w->loop) < 0 || uv_tcp_init(&w->loop, &w->listener) < 0 ||
            uv_tcp_open(&w->listener, fd) < 0 || uv_async_init(&w->loop, &w->stop, on_stop) < 0) {
            fprintf(stderr, "mock-upstream: libuv setup failed\n");
            return 1;
        }
        w->listener.data = w->stop.data = w;
        int r = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
        if (r < 0) {
            fprintf(stderr, "mock-upstream: listen: %s\n", uv_strerror(r));
            return 1;
        }
    }
    /* The kernel queues connections from here on, so announcing before the threads run is
     * safe. The port file is written whole (rename) so a poller never reads half of it. */
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, port_file) < 0) {
            fprintf(stderr, "mock-upstream: write %s: %s\n", port_file, strerror(errno));
            return 1;
        }
    }
    printf("mock-upstream listening on %s%s%s:%d\n", ss.ss_family == AF_INET6 ? "[" : "", host,
           ss.ss_family == AF_INET6 ? "]" : "", port);
    fflush(stdout);

    for (long i = 0; i < threads; i++) {
        if (uv_thread_create(&ws[i].thread, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "mock-upstream: cannot start thread\n");
            return 1;
        }
    }
    int sig = 0;
    sigwait(&stop_sigs, &sig);
    for (long i = 0; i < threads; i++)
        uv_async_send(&ws[i].stop);
    for (long i = 0; i < threads; i++)
        uv_thread_join(&ws[i].thread);
    free(ws);
    return 0;
}
