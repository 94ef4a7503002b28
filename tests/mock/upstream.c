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
 * filler buffer, written with writev and never copied. */
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
#include <unistd.h>

#include <http_parser.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <uv.h>

static const char usage[] =
    "usage: mock-upstream [--listen HOST:PORT] [--threads N] [--port-file PATH]\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:0; port 0 = ephemeral)\n"
    "  --threads N         worker threads, each with its own SO_REUSEPORT socket (default 1)\n"
    "  --port-file PATH    write the port actually bound to PATH once listening\n"
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
    "GET /healthz always answers 200 {\"ok\":true}. Exits 0 on SIGTERM or SIGINT.\n";

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

typedef struct {
    uint64_t status; /* 0 = 200 */
    uint64_t size;
    uint64_t delay_ms;
    uint64_t chunked; /* number of chunks; 0 = not chunked */
    uint64_t chunk_delay_ms;
    uint64_t sse;
    uint64_t interval_ms;
    bool has_size, has_sse, echo, close, hang, healthz;
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
    int err_status;   /* set by a parser callback that rejects the request */
    bool in_value;    /* last header callback was a value */
    bool hdr_started; /* a header field has begun since the last block started */
    char cur_name[8]; /* first bytes of the current header name, to spot Expect */
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

    char url[URL_MAX];
    char rbuf[READ_BUF];
};

static void conn_close(conn_t *c);
static void conn_shutdown(conn_t *c);
static void parse_input(conn_t *c);
static void pump(conn_t *c);
static void on_timer(uv_timer_t *t);

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

/* Decides whether the header that just ended was `Expect: 100-continue`. */
static void end_header(conn_t *c)
{
    if (c->cur_name_len == 6 && strncasecmp(c->cur_name, "expect", 6) == 0 &&
        c->cur_val_len == 12 && strncasecmp(c->cur_val, "100-continue", 12) == 0)
        c->expect_continue = true;
    c->cur_name_len = c->cur_val_len = 0;
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
    if (!c->keep_alive)
        sb_str(b, "Connection: close\r\n");
    else if (c->http10)
        sb_str(b, "Connection: keep-alive\r\n");
}

static void finish_response(conn_t *c)
{
    free(c->echo_json);
    c->echo_json = NULL;
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

/* Sends the head and either the whole body or, when streamed, starts the pump. */
static void send_response(conn_t *c)
{
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
        if (!c->gap_done && c->gap_ms > 0) {
            c->timer_wait = true;
            uv_timer_start(&c->timer, on_timer, c->gap_ms, 0);
            return;
        }
        bool last = c->chunk_i + 1 == c->nchunks;
        uint64_t off = 0, len;
        char ev[64];
        const char *mem;
        if (c->p.has_sse) {
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
        size_t inline_len = mem ? (size_t)len : 0;
        wreq_t *wr = wreq_get(c, 32 + inline_len + 8);
        if (!wr) {
            conn_close(c);
            return;
        }
        sb_t b = {wr->buf, 0, wr->cap};
        if (c->te_chunked) {
            sb_u64(&b, len, 16);
            sb_str(&b, "\r\n");
        }
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
    if (p->close) {
        conn_shutdown(c);
        return;
    }
    if (p->hang) {
        c->state = ST_HANGING;
        c->in_off = c->in_len = 0;
        return;
    }
    if (p->status && (p->status < 200 || p->status > 999)) {
        send_error(c, 400);
        return;
    }
    if (p->echo) {
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
