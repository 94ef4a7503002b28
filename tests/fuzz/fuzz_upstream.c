/* libFuzzer target: the upstream's side of a connection: the answer path of
 * src/gateway/conn.c (on_up_header, on_up_head_done, on_up_body: the response head kept for
 * the client, its framing, the SSE rewrite of include_usage streams, the meter's decoded
 * copy) and the native HTTP/1.1 client src/gateway/h1.c that reads it, from an upstream that
 * answers with arbitrary bytes.
 *
 * No seam in src/ is needed. As in fuzz_request.c, the harness is a worker on its own uv loop
 * with a loopback listener; the one upstream target is a second loopback listener in the same
 * process, served by the harness itself between turns of the loop: every request forwarded
 * to it (read up to its end: Content-Length or chunked) is answered with the input's bytes.
 * The client side sends one fixed, valid request, picked by the input.
 *
 * Input: byte 0: bits 0-2 the request (a GET on an http route, an OpenAI chat completion,
 * a streamed one tollgate rewrites with include_usage, an MCP tools/call, a streamed
 * Anthropic message, a streamed Responses call, two pipelined GETs, a chunked POST on the
 * http route); bit 3: the upstream closes its side after the answer (else it keeps the
 * connection open); bit 4: the answer goes out in pieces, one per turn of the loop, sized
 * from byte 1; bit 5: the upstream answers as soon as it accepts, before the request has
 * arrived (an early answer); bit 6: the client leaves (a reset) as soon as the first bytes
 * of an answer reach it, so an AI answer is drained for its usage. The rest is the answer.
 *
 * Checks: every answer to the client is well-formed HTTP/1.1 (llhttp; a connection may
 * end anywhere, the gateway closes when it cannot finish an answer), the connection ends,
 * no request stays in flight (srv->inflight back to 0), the request reached the upstream
 * (the harness is not fooling itself), and the sanitizers. Each input ends
 * with the upstream's sockets reset, so the next starts from an empty keep-alive pool. */
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/apikey.h"
#include "fuzz.h"
#include "worker.h"
#include "gateway/conn.h"
#include "util/clock.h"
#include "util/log.h"

#define AUTH "Authorization: Bearer " FUZZ_KEY "\r\n"

/* %d: the upstream's port. Targets never cool down (max_fails): every input reaches it. */
static const char config_fmt[] =
    "server:\n"
    "  listen: 127.0.0.1:0\n"
    "  admin_listen: \"\"\n"
    "  workers: 1\n"
    "  max_header_bytes: 8k\n"
    "  max_body: 256k\n"
    "store: \"sqlite::memory:\"\n"
    "log: { access: \"off\", level: error }\n"
    "defaults:\n"
    "  limits: { rps: 1000000, concurrency: 1000 }\n"
    "upstreams:\n"
    "  - name: up\n"
    "    targets: [http://127.0.0.1:%d]\n"
    "    max_fails: 1000000\n"
    "routes:\n"
    "  - { name: claude, path_prefix: /v1/messages, upstream: up, kind: anthropic }\n"
    "  - { name: openai, path_prefix: /v1/, upstream: up, kind: openai }\n"
    "  - { name: tools, path_prefix: /mcp, upstream: up, kind: mcp }\n"
    "  - { name: rest, path_prefix: /api, upstream: up, kind: http }\n"
    "prices:\n"
    "  models:\n"
    "    gpt-4o-mini: { input: 0.15, output: 0.60 }\n"
    "    \"*\": { input: 10, output: 30 }\n"
    "  tools:\n"
    "    \"*\": { call: 0.001 }\n";

#define JSON_POST(path, extra, body)                                                               \
    "POST " path " HTTP/1.1\r\nHost: gw\r\n" AUTH extra                                            \
    "Content-Type: application/json\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"               \
    "Content-Length: %zu\r\n\r\n" body

static const struct {
    const char *fmt; /* %zu: the body's length, when there is one */
    const char *body;
} requests[8] = {
    {"GET /api/items?x=1 HTTP/1.1\r\nHost: gw\r\n" AUTH "Accept: */*\r\n\r\n", NULL},
    {JSON_POST("/v1/chat/completions", "", ""),
     "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}],"
     "\"max_completion_tokens\":5}"},
    {JSON_POST("/v1/chat/completions", "Accept: text/event-stream\r\n", ""),
     "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
     "\"Say hello\"}],\"max_tokens\":5}"},
    {JSON_POST("/mcp", "Accept: application/json, text/event-stream\r\nMcp-Session-Id: s1\r\n", ""),
     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"search\","
     "\"arguments\":{\"q\":\"x\"}}}"},
    {JSON_POST("/v1/messages", "anthropic-version: 2023-06-01\r\n", ""),
     "{\"model\":\"claude-3-5-haiku\",\"stream\":true,\"max_tokens\":8,\"messages\":[{\"role\":"
     "\"user\",\"content\":\"hi\"}]}"},
    {JSON_POST("/v1/responses", "", ""),
     "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"input\":\"hi\",\"max_output_tokens\":4}"},
    {"GET /api/a HTTP/1.1\r\nHost: gw\r\n" AUTH "\r\nGET /api/b HTTP/1.1\r\nHost: gw\r\n" AUTH
     "\r\n",
     NULL},
    {"POST /api/up HTTP/1.1\r\nHost: gw\r\n" AUTH
     "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
     NULL},
};

static char config_yaml[4096];
static tg_server_t srv;
static tg_worker_t w;
static int port, up_fd, up_port;
static int echo; /* FUZZ_ECHO=1: the answers to the client go to stderr */

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_upstream: %s: %s\n", what, msg);
    exit(1);
}

static void upstream_listen(void)
{
    up_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (up_fd < 0 || bind(up_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(up_fd, 64) != 0 ||
        getsockname(up_fd, (struct sockaddr *)&a, &alen) != 0)
        die("upstream", "cannot listen on 127.0.0.1");
    if (fz_linger0(up_fd) != 0) die("upstream", "cannot set SO_LINGER");
    up_port = ntohs(a.sin_port);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    echo = getenv("FUZZ_ECHO") != NULL;
    tg_log_level = TG_LOG_ERROR;
    upstream_listen();
    int len = snprintf(config_yaml, sizeof config_yaml, config_fmt, up_port);
    /* (The client's parser here, llhttp, has no head limit: it takes what tollgate adds to a
     * head it relays. h1.c holds upstream heads to its own caps, not max_header_bytes.) */
    port = fz_worker_start("fuzz_upstream", config_yaml, (size_t)len, &srv, &w);
    return 0;
}

/* ---- the upstream: answers every request it reads with the input's bytes ------------- */

#define UP_MAX  8         /* connections at once (one request needs one; retries another) */
#define REQ_MAX (1 << 20) /* request bytes held (the requests above are small) */

struct upconn {
    int fd;
    char *req; /* bytes of the request being read */
    size_t rlen;
    size_t sent;  /* answer bytes sent; SIZE_MAX while no request waits for an answer */
    int shut;     /* our side is closed for writing (close mode, after the answer) */
    int peer_eof; /* the gateway closed its side */
};

static struct {
    struct upconn c[UP_MAX];
    int n;
    const uint8_t *ans; /* the answer */
    size_t alen;
    int close_after, pieces, early;
    fz_split_t sp;
    size_t requests; /* requests answered (or being answered) */
} up;

/* The end of the request at the start of b, or 0 while it is incomplete: a head, then a
 * Content-Length body or a chunked one (up to its last chunk and an empty trailer). */
static size_t request_end(const char *b, size_t n)
{
    const char *e = memmem(b, n, "\r\n\r\n", 4);
    if (!e) return 0;
    size_t head = (size_t)(e - b) + 4;
    for (const char *l = b; l < e; l = memchr(l, '\n', (size_t)(e - l)) + 1) {
        if ((size_t)(e - l) > 15 && strncasecmp(l, "content-length:", 15) == 0) {
            size_t cl = strtoull(l + 15, NULL, 10);
            return n - head >= cl ? head + cl : 0;
        }
        if ((size_t)(e - l) > 18 && strncasecmp(l, "transfer-encoding:", 18) == 0) {
            const char *z = memmem(b + head - 2, n - head + 2, "\r\n0\r\n\r\n", 7);
            return z ? (size_t)(z - b) + 7 : 0;
        }
        if (!memchr(l, '\n', (size_t)(e - l))) break;
    }
    return head;
}

static int up_pump(void)
{
    int moved = 0;
    while (up.n < UP_MAX) {
        int fd = accept4(up_fd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) break;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        up.c[up.n++] = (struct upconn){.fd = fd, .sent = up.early ? 0 : SIZE_MAX};
        if (up.early) up.requests++;
        moved = 1;
    }
    for (int i = 0; i < up.n; i++) {
        struct upconn *c = &up.c[i];
        while (!c->peer_eof) {
            if (!c->req) FZ_CHECK((c->req = malloc(REQ_MAX)) != NULL);
            ssize_t k = recv(c->fd, c->req + c->rlen, REQ_MAX - c->rlen, 0);
            if (k == 0 || (k < 0 && errno != EAGAIN) || c->rlen == REQ_MAX) c->peer_eof = 1;
            if (k <= 0) break;
            c->rlen += (size_t)k;
            moved = 1;
        }
        if (c->sent == SIZE_MAX && !c->shut) {
            size_t end = request_end(c->req ? c->req : "", c->rlen);
            if (end) {
                memmove(c->req, c->req + end, c->rlen - end);
                c->rlen -= end;
                c->sent = 0;
                up.requests++;
                moved = 1;
            }
        }
        while (c->sent != SIZE_MAX && c->sent < up.alen) {
            size_t k = up.alen - c->sent;
            if (up.pieces) k = fz_split_next(&up.sp, k);
            ssize_t s = send(c->fd, up.ans + c->sent, k, MSG_NOSIGNAL);
            if (s <= 0) {
                if (s < 0 && errno != EAGAIN) c->sent = up.alen; /* reset: nothing more goes */
                break;
            }
            c->sent += (size_t)s;
            moved = 1;
            if (up.pieces) break; /* one piece a turn */
        }
        if (c->sent != SIZE_MAX && c->sent >= up.alen) {
            if (up.close_after) {
                shutdown(c->fd, SHUT_WR);
                c->shut = 1;
            }
            c->sent = SIZE_MAX; /* ready for the next request on this connection */
        }
    }
    return moved;
}

static void up_reset(void)
{
    for (int i = 0; i < up.n; i++) {
        close(up.c[i].fd); /* a reset (SO_LINGER 0) */
        free(up.c[i].req);
    }
    up.n = 0;
}

/* ---- the client ---------------------------------------------------------------------- */

struct client {
    int fd;
    llhttp_t rp; /* tollgate's answers, which must be well-formed HTTP/1.1 */
    const char *p;
    size_t n, sent;
    int eof;
    int leave; /* close at the first answer byte */
};

/* Moves bytes every way without blocking; returns 1 when anything moved. */
static int pump(struct client *cl)
{
    int moved = up_pump();
    while (cl->fd >= 0 && cl->sent < cl->n) {
        ssize_t k = send(cl->fd, cl->p + cl->sent, cl->n - cl->sent, MSG_NOSIGNAL);
        if (k <= 0) {
            if (k < 0 && errno != EAGAIN) cl->sent = cl->n;
            break;
        }
        cl->sent += (size_t)k;
        moved = 1;
    }
    static char buf[65536];
    while (!cl->eof) {
        ssize_t k = recv(cl->fd, buf, sizeof buf, 0);
        if (k == 0 || (k < 0 && errno != EAGAIN)) cl->eof = 1, moved = 1;
        if (k <= 0) break;
        if (echo) fwrite(buf, 1, (size_t)k, stderr);
        if (cl->leave) { /* the client leaves: a reset, nothing more read */
            close(cl->fd);
            cl->fd = -1;
            cl->eof = 1;
            return 1;
        }
        llhttp_errno_t e = llhttp_execute(&cl->rp, buf, (size_t)k);
        if (e != HPE_OK) {
            fprintf(stderr, "malformed answer: %s (%s)\n", llhttp_errno_name(e),
                    llhttp_get_error_reason(&cl->rp));
            abort();
        }
        moved = 1;
    }
    return moved;
}

static void settle(struct client *cl, int max_turns)
{
    long long inflight = -1;
    size_t nconns = (size_t)-1;
    for (int quiet = 0, t = 0; quiet < 4 && t < max_turns; t++) {
        int moved = pump(cl);
        uv_run(&w.loop, UV_RUN_NOWAIT);
        moved |= pump(cl);
        long long inf = atomic_load(&srv.inflight);
        if (inf != inflight || w.nconns != nconns) moved = 1;
        inflight = inf;
        nconns = w.nconns;
        quiet = moved ? 0 : quiet + 1;
        if (cl->eof && w.nconns == 0) break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int which = data[0] & 7;
    up.ans = data + 2;
    up.alen = size - 2;
    up.close_after = (data[0] >> 3) & 1;
    up.pieces = (data[0] >> 4) & 1;
    up.early = (data[0] >> 5) & 1;
    fz_split_init(&up.sp, data[1]);
    up.requests = 0;

    char req[2048];
    const char *body = requests[which].body;
    int rn = body ? snprintf(req, sizeof req, requests[which].fmt, strlen(body))
                  : snprintf(req, sizeof req, "%s", requests[which].fmt);
    FZ_CHECK(rn > 0 && (size_t)rn < sizeof req);
    if (body) {
        FZ_CHECK((size_t)rn + strlen(body) < sizeof req);
        memcpy(req + rn, body, strlen(body));
        rn += (int)strlen(body);
    }

    struct client cl = {.fd = socket(AF_INET, SOCK_STREAM, 0), .p = req, .n = (size_t)rn};
    FZ_CHECK(cl.fd >= 0);
    cl.leave = (data[0] >> 6) & 1;
    static llhttp_settings_t none; /* (all callbacks NULL) */
    llhttp_init(&cl.rp, HTTP_RESPONSE, &none);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    fcntl(cl.fd, F_SETFL, fcntl(cl.fd, F_GETFL) | O_NONBLOCK);
    if (connect(cl.fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS &&
        errno != EINTR) {
        perror("fuzz_upstream: connect");
        abort();
    }
    fz_linger0(cl.fd);
    for (int t = 0; t < 1000 && w.nconns == 0; t++)
        uv_run(&w.loop, UV_RUN_NOWAIT); /* the accept */
    FZ_CHECK(w.nconns == 1);

    settle(&cl, 20000);
    if (!cl.eof) {
        shutdown(cl.fd, SHUT_WR);
        settle(&cl, 20000);
    }
    if (w.nconns) tg_conn_close_all(&w); /* waiting on a timer: what a deadline would do */
    if (cl.fd >= 0) close(cl.fd);
    up_reset();
    /* close callbacks free the connection; the pool sees its idle upstream sockets reset */
    for (int t = 0; t < 8; t++)
        uv_run(&w.loop, UV_RUN_NOWAIT);
    FZ_CHECK(w.nconns == 0);
    FZ_CHECK(atomic_load(&srv.inflight) == 0);
    /* every request is valid: it reached the upstream (no target cooled down, no refusal) */
    FZ_CHECK(up.requests >= 1);
    return 0;
}
