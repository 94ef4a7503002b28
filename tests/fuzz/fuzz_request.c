/* libFuzzer target: the client side of a connection (src/gateway/conn.c) from raw bytes:
 * the HTTP/1.1 request head parser and the header policy (framing, limits, credentials,
 * routing, hop-by-hop headers), request bodies (Content-Length, chunked, held AI and MCP
 * bodies), pipelining and keep-alive, and the error answers.
 *
 * No seam in conn.c is needed: the harness is a worker (gateway/server.h) on its own uv loop
 * with a loopback listener, as the server builds it, and each input is one TCP connection
 * to it. The input is written, the loop runs until nothing moves, the client half-closes,
 * the loop runs until the connection is gone (tg_conn_close_all ends one still waiting on
 * a timer). The config routes openai, anthropic, MCP and plain http paths to one upstream,
 * http://127.0.0.1:1, which refuses: every forwarded request ends in a 502. The store is
 * SQLite in memory with one tenant, a budget and one key, FUZZ_KEY (the seeds use it);
 * events reach the recorder, whose store append discards them so memory stays flat over
 * millions of runs. Checks: the answers are well-formed HTTP/1.1 responses (llhttp), every
 * connection ends and no request stays in flight. */
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/apikey.h"
#include "fuzz.h"
#include "worker.h"
#include "gateway/conn.h"
#include "util/clock.h"
#include "util/log.h"

static const char config_yaml[] =
    "server:\n"
    "  listen: 127.0.0.1:0\n"
    "  admin_listen: \"\"\n"
    "  workers: 1\n"
    "  max_header_bytes: 8k\n"
    "  max_body: 256k\n"
    "  trusted_proxies: [127.0.0.0/8]\n"
    "store: \"sqlite::memory:\"\n"
    "log: { access: \"off\", level: error }\n"
    "defaults:\n"
    "  limits: { rps: 1000000, concurrency: 1000 }\n"
    "upstreams:\n"
    "  - name: dead\n"
    "    targets: [http://127.0.0.1:1]\n"
    "routes:\n"
    "  - { name: claude, path_prefix: /v1/messages, upstream: dead, kind: anthropic }\n"
    "  - { name: openai, path_prefix: /v1/, upstream: dead, kind: openai }\n"
    "  - { name: tools, path_prefix: /mcp, upstream: dead, kind: mcp }\n"
    "  - { name: rest, path_prefix: /api, upstream: dead, kind: http }\n"
    "prices:\n"
    "  models:\n"
    "    gpt-4o-mini: { input: 0.15, output: 0.60 }\n"
    "    \"*\": { input: 10, output: 30 }\n"
    "  tools:\n"
    "    \"*\": { call: 0.001 }\n";

static tg_server_t srv;
static tg_worker_t w;
static int port;
static int echo; /* FUZZ_ECHO=1: the answers go to stderr (to look at what a seed does) */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    echo = getenv("FUZZ_ECHO") != NULL;
    tg_log_level = TG_LOG_ERROR;
    port = fz_worker_start("fuzz_request", config_yaml, sizeof config_yaml - 1, &srv, &w);
    return 0;
}

struct client {
    int fd;
    llhttp_t rp; /* tollgate's answers, which must be well-formed HTTP/1.1 */
    int head;    /* a HEAD request was sent: bodiless answers, unknown to rp */
    const uint8_t *p;
    size_t n, sent;
    size_t got; /* response bytes read */
    int eof;
};

/* Moves bytes both ways without blocking; returns 1 when anything moved. */
static int pump(struct client *cl)
{
    int moved = 0;
    while (cl->sent < cl->n) {
        ssize_t k = send(cl->fd, cl->p + cl->sent, cl->n - cl->sent, MSG_NOSIGNAL);
        if (k <= 0) {
            if (k < 0 && errno != EAGAIN) cl->sent = cl->n; /* reset: nothing more goes */
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
        cl->got += (size_t)k;
        if (echo) fwrite(buf, 1, (size_t)k, stderr);
        if (!cl->head) {
            llhttp_errno_t e = llhttp_execute(&cl->rp, buf, (size_t)k);
            if (e != HPE_OK) {
                fprintf(stderr, "malformed answer: %s (%s)\n", llhttp_errno_name(e),
                        llhttp_get_error_reason(&cl->rp));
                abort();
            }
        }
        moved = 1;
    }
    return moved;
}

/* Runs the loop until neither the client nor the server moves for a few turns, or at most
 * max_turns. */
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
    struct client cl = {.fd = socket(AF_INET, SOCK_STREAM, 0), .p = data, .n = size};
    FZ_CHECK(cl.fd >= 0);
    static llhttp_settings_t none; /* (all callbacks NULL) */
    llhttp_init(&cl.rp, HTTP_RESPONSE, &none);
    cl.head = memmem(data, size, "HEAD", 4) != NULL;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* Non-blocking from the start: libFuzzer's timeout alarm interrupts a blocking
     * connect (EINTR); on loopback the handshake is done by the time of the accept. */
    fcntl(cl.fd, F_SETFL, fcntl(cl.fd, F_GETFL) | O_NONBLOCK);
    if (connect(cl.fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS &&
        errno != EINTR) {
        perror("fuzz_request: connect");
        abort();
    }
    /* Closing with a reset: no TIME_WAIT pile-up over millions of connections. */
    fz_linger0(cl.fd);
    for (int t = 0; t < 1000 && w.nconns == 0; t++)
        uv_run(&w.loop, UV_RUN_NOWAIT); /* the accept */
    FZ_CHECK(w.nconns == 1);

    settle(&cl, 20000);
    /* A FIN after tollgate's would leave its socket in TIME_WAIT: then the reset of the
     * close below ends the connection instead. */
    if (!cl.eof) {
        shutdown(cl.fd, SHUT_WR);
        settle(&cl, 20000);
    }
    if (w.nconns) tg_conn_close_all(&w); /* waiting on a timer: what a deadline would do */
    close(cl.fd);
    for (int t = 0; t < 4; t++)
        uv_run(&w.loop, UV_RUN_NOWAIT); /* close callbacks free the connection */
    FZ_CHECK(w.nconns == 0);
    FZ_CHECK(atomic_load(&srv.inflight) == 0);
    return 0;
}
