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
 * millions of runs. Checks: the answers are well-formed HTTP/1.1 responses (http_parser), every
 * connection ends and no request stays in flight. */
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/apikey.h"
#include "fuzz.h"
#include "gateway/conn.h"
#include "util/clock.h"
#include "util/log.h"

#define FUZZ_KEY "tg_fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuz"

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
static struct tg_store_ops ops; /* the SQLite store's, with append and purge discarding */
static int port;
static int echo; /* FUZZ_ECHO=1: the answers go to stderr (to look at what a seed does) */

static int discard_append(tg_store_t *s, const tg_event_t *evs, size_t n, size_t *inserted,
                          tg_err_t *err)
{
    (void)s, (void)evs, (void)err;
    *inserted = n;
    return 0;
}

static int discard_purge(tg_store_t *s, int64_t events_before_us, const char *agg_before_day,
                         int64_t *deleted, tg_err_t *err)
{
    (void)s, (void)events_before_us, (void)agg_before_day, (void)err;
    if (deleted) *deleted = 0;
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status == 0) tg_conn_accept(server->data);
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_request: %s: %s\n", what, msg);
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    tg_err_t err;
    signal(SIGPIPE, SIG_IGN);
    echo = getenv("FUZZ_ECHO") != NULL;
    tg_log_level = TG_LOG_ERROR;
    if (tg_config_parse("fuzz.yaml", config_yaml, sizeof config_yaml - 1, &srv.cfg, &err) != 0)
        die("config", err.msg);
    http_parser_set_max_header_size((uint32_t)srv.cfg->server.max_header_bytes);

    tg_store_t *store;
    if (tg_store_open("sqlite::memory:", &store, &err) != 0) die("store", err.msg);
    tg_key_t k = {.id = "key_fuzz",
                  .tenant_id = "t1",
                  .prefix = "tg_fuzzf",
                  .name = "fuzz",
                  .status = "active"};
    tg_apikey_hash(FUZZ_KEY, strlen(FUZZ_KEY), k.sha256);
    tg_budget_row_t b = {.tenant = "t1", .monthly_micros = INT64_C(1) << 50, .hard = 1};
    if (tg_store_tenant_add(store, "t1", "fuzz", &err) != 0 ||
        tg_store_key_add(store, &k, &err) != 0 || tg_store_budget_set(store, &b, &err) != 0)
        die("store", err.msg);
    srv.keys = tg_keyring_new();
    srv.policy = tg_policy_new();
    srv.prices = tg_pricebook_new();
    tg_policy_defaults_t pd = {
        .rate = {.limit = 1000000, .period_ns = 1000000000ull}, .has_rate = 1, .concurrency = 1000};
    tg_policy_set_defaults(srv.policy, &pd);
    if (tg_pricebook_set_defaults(srv.prices, srv.cfg->prices, srv.cfg->nprices, &err) != 0 ||
        tg_keyring_load(srv.keys, store, &err) != 0 ||
        tg_policy_load(srv.policy, store, tg_wall_us(), &err) != 0 ||
        tg_pricebook_load(srv.prices, store, &err) != 0)
        die("load", err.msg);
    ops = *store->ops;
    ops.append = discard_append;
    ops.purge = discard_purge;
    store->ops = &ops;
    tg_recorder_opts_t ro = {.access_log = "off", .queue_size = 4096, .flush_ms = 50};
    if (tg_recorder_start_with_store(&ro, store, &srv.rec, &err) != 0) die("recorder", err.msg);

    /* One worker, built as server.c's worker_init does, on a loopback listener. */
    srv.workers = &w;
    srv.nworkers = 1;
    w.srv = &srv;
    w.cfg = tg_config_ref(srv.cfg);
    pthread_mutex_init(&w.mu, NULL);
    uv_loop_init(&w.loop);
    uv_tcp_init(&w.loop, &w.listener);
    w.listener.data = &w;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (uv_tcp_bind(&w.listener, (struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&w.listener, 128, on_connection) != 0)
        die("listen", "cannot listen on 127.0.0.1");
    /* Accepted sockets inherit SO_LINGER: a connection tollgate closes ends with a reset,
     * never in TIME_WAIT, which would hold its port pair for a minute and run out of ports
     * after some 28,000 connections. */
    uv_os_fd_t lfd;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (uv_fileno((uv_handle_t *)&w.listener, &lfd) != 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
        die("listen", "cannot set SO_LINGER");
    int alen = sizeof a;
    uv_tcp_getsockname(&w.listener, (struct sockaddr *)&a, &alen);
    port = ntohs(a.sin_port);
    w.proxy = tg_proxy_new(&w.loop);
    if (!w.proxy) die("proxy", "cannot create the upstream client");
    return 0;
}

struct client {
    int fd;
    http_parser rp; /* tollgate's answers, which must be well-formed HTTP/1.1 */
    int head;       /* a HEAD request was sent: bodiless answers, unknown to rp */
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
            static const http_parser_settings none;
            http_parser_execute(&cl->rp, &none, buf, (size_t)k);
            if (HTTP_PARSER_ERRNO(&cl->rp) != HPE_OK) {
                fprintf(stderr, "malformed answer: %s\n",
                        http_errno_description(HTTP_PARSER_ERRNO(&cl->rp)));
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
    http_parser_init(&cl.rp, HTTP_RESPONSE);
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
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(cl.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
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
