/* bench/stream client: streamed OpenAI chat completions over CONC keep-alive connections
 * (epoll, one thread), with the mock upstream's `x-mock-stamp: 1`, which starts every event
 * with `id: <CLOCK_MONOTONIC ns at send>`. This process reads the same clock when the
 * read() that completes an event returns:
 *   per-chunk latency = that time - the stamp
 *   TTFT              = first event with non-empty delta.content - the request's write
 * (TTFT includes one x-mock-interval-ms by construction: the mock sends the role chunk at
 * once and the first token one interval later.)
 *
 *   stream-client HOST PORT PATH OUT.json [--way NAME] [--key K] [--streams N] [--conc C]
 *                 [--max-tokens T] [--interval-ms I] [--include-usage] [--spin]
 *
 * --spin polls epoll without sleeping: the client's own wake-up (which on this VM is
 * 0.1 ms typically and milliseconds at worst) leaves the measurement. Only sensible when
 * the client has a CPU to itself (PIN=1 in run.sh).
 * Checks every stream (status 200, T content chunks, [DONE], a stamp on every event) and
 * counts usage chunks ("choices":[] with "usage") and `"usage":null` members, so the caller
 * can tell which path a proxy took. Writes the samples (ns) and counts as JSON, read by
 * `node bench/stream/report.mjs`. Only what the mock and the proxies send is parsed:
 * HTTP/1.1, chunked or Content-Length bodies, \n-separated events. Exits 1 on a bad stream. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int64_t *v;
    size_t n, cap;
} vec_t;

static void push(vec_t *a, int64_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4096;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) abort();
    }
    a->v[a->n++] = x;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

enum { S_HEAD, S_CSIZE, S_CDATA, S_CCRLF, S_CTRAILER, S_BODY, S_DONE };

typedef struct {
    int fd;
    int state;
    char head[8192];
    size_t head_len;
    long long left; /* bytes left in this chunk, or of a Content-Length body */
    int chunked;
    char csize[32];
    size_t csize_len;
    char ev[65536]; /* current event */
    size_t ev_len;
    /* this stream */
    int64_t t0, ttft, stamp;
    int status, content, done, events, stamped;
} conn_t;

static struct {
    const char *host, *path, *key, *way, *out;
    int port, streams, conc, max_tokens, interval_ms, include_usage, spin;
} o = {.streams = 300, .conc = 10, .max_tokens = 50, .interval_ms = 10, .key = "", .way = ""};

static char req[4096];
static size_t req_len;
static int issued, finished, bad;
static long long tot_events, unstamped, usage_chunks, usage_null;
static vec_t lat, ttft;

static int connect_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    inet_pton(AF_INET, o.host, &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void start(conn_t *c)
{
    c->state = S_HEAD;
    c->head_len = c->ev_len = c->csize_len = 0;
    c->chunked = 0;
    c->left = -1;
    c->ttft = -1;
    c->stamp = -1;
    c->status = c->content = c->done = c->events = c->stamped = 0;
    c->t0 = now_ns();
    /* blocking write of a small request: fits the socket buffer */
    if (write(c->fd, req, req_len) != (ssize_t)req_len) {
        perror("write");
        exit(1);
    }
    issued++;
}

static void event_end(conn_t *c, int64_t t)
{
    c->events++;
    c->ev[c->ev_len] = 0;
    const char *id = NULL, *data = NULL;
    for (char *line = c->ev; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (strncmp(line, "id: ", 4) == 0) id = line + 4;
        if (strncmp(line, "data: ", 6) == 0) data = line + 6;
        line = nl ? nl + 1 : NULL;
    }
    if (id) {
        c->stamped++;
        push(&lat, t - strtoll(id, NULL, 10));
    }
    if (data) {
        if (strcmp(data, "[DONE]") == 0)
            c->done = 1;
        else {
            if (strstr(data, "\"usage\":null")) usage_null++;
            if (strstr(data, "\"choices\":[]") && strstr(data, "\"usage\":{")) usage_chunks++;
            const char *d = strstr(data, "\"delta\":{\"content\":\"");
            if (d && d[20] != '"') {
                c->content++;
                if (c->ttft < 0) c->ttft = t - c->t0;
            }
        }
    }
    c->ev_len = 0;
}

/* body bytes, in order */
static void body(conn_t *c, const char *p, size_t n, int64_t t)
{
    for (size_t i = 0; i < n; i++) {
        if (c->ev_len + 1 >= sizeof c->ev) {
            fprintf(stderr, "event too large\n");
            exit(1);
        }
        c->ev[c->ev_len++] = p[i];
        if (p[i] == '\n' && c->ev_len >= 2 && c->ev[c->ev_len - 2] == '\n') {
            c->ev_len -= 2;
            event_end(c, t);
        }
    }
}

static void stream_end(conn_t *c)
{
    finished++;
    tot_events += c->events;
    unstamped += c->events - c->stamped;
    if (c->status != 200 || !c->done || c->content != o.max_tokens || c->ttft < 0) {
        if (bad++ < 3)
            fprintf(stderr, "bad stream: status %d done %d content %d events %d\n", c->status,
                    c->done, c->content, c->events);
        return;
    }
    push(&ttft, c->ttft);
}

/* Feeds bytes read at time t; returns 1 when the response is complete. */
static int feed(conn_t *c, const char *p, size_t n, int64_t t)
{
    size_t i = 0;
    while (i < n && c->state != S_DONE) {
        switch (c->state) {
        case S_HEAD: {
            c->head[c->head_len++] = p[i++];
            if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0) {
                c->head[c->head_len] = 0;
                c->status = atoi(c->head + 9);
                c->chunked = strcasestr(c->head, "\ntransfer-encoding: chunked") != NULL;
                char *cl = strcasestr(c->head, "\ncontent-length:");
                if (c->chunked)
                    c->state = S_CSIZE;
                else if (cl) {
                    c->left = atoll(cl + 16);
                    c->state = c->left ? S_BODY : S_DONE;
                } else {
                    fprintf(stderr, "response without length\n");
                    exit(1);
                }
            } else if (c->head_len + 1 >= sizeof c->head) {
                fprintf(stderr, "head too large\n");
                exit(1);
            }
            break;
        }
        case S_CSIZE:
            if (p[i] == '\n') {
                c->csize[c->csize_len] = 0;
                c->left = strtoll(c->csize, NULL, 16);
                c->csize_len = 0;
                c->state = c->left ? S_CDATA : S_CTRAILER;
            } else if (c->csize_len + 1 < sizeof c->csize)
                c->csize[c->csize_len++] = p[i];
            i++;
            break;
        case S_CDATA:
        case S_BODY: {
            size_t k = n - i < (size_t)c->left ? n - i : (size_t)c->left;
            body(c, p + i, k, t);
            i += k;
            c->left -= (long long)k;
            if (c->left == 0) c->state = c->state == S_CDATA ? S_CCRLF : S_DONE;
            break;
        }
        case S_CCRLF: /* the CRLF after chunk data */
            if (p[i++] == '\n') c->state = S_CSIZE;
            break;
        case S_CTRAILER: /* after the last chunk: lines until an empty one */
            if (p[i] == '\n') {
                if (c->csize_len == 0) c->state = S_DONE;
                c->csize_len = 0;
            } else if (p[i] != '\r')
                c->csize_len = 1;
            i++;
            break;
        }
    }
    if (c->state == S_DONE && i != n) {
        fprintf(stderr, "bytes after the response\n");
        exit(1);
    }
    return c->state == S_DONE;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void put_vec(FILE *f, const char *name, vec_t *v)
{
    fprintf(f, "\"%s\":[", name);
    for (size_t i = 0; i < v->n; i++)
        fprintf(f, "%s%lld", i ? "," : "", (long long)v->v[i]);
    fprintf(f, "]");
}

int main(int argc, char **argv)
{
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--include-usage"))
            o.include_usage = 1;
        else if (!strcmp(a, "--spin"))
            o.spin = 1;
        else if (a[0] == '-' && a[1] == '-' && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--way"))
                o.way = v;
            else if (!strcmp(a, "--key"))
                o.key = v;
            else if (!strcmp(a, "--streams"))
                o.streams = atoi(v);
            else if (!strcmp(a, "--conc"))
                o.conc = atoi(v);
            else if (!strcmp(a, "--max-tokens"))
                o.max_tokens = atoi(v);
            else if (!strcmp(a, "--interval-ms"))
                o.interval_ms = atoi(v);
            else {
                fprintf(stderr, "unknown option %s\n", a);
                return 2;
            }
        } else if (pos == 0)
            o.host = a, pos++;
        else if (pos == 1)
            o.port = atoi(a), pos++;
        else if (pos == 2)
            o.path = a, pos++;
        else if (pos == 3)
            o.out = a, pos++;
    }
    if (pos != 4 || o.conc < 1 || o.streams < 1) {
        fprintf(stderr, "usage: stream-client HOST PORT PATH OUT.json [--way NAME] [--key K] "
                        "[--streams N] [--conc C] [--max-tokens T] [--interval-ms I] "
                        "[--include-usage] [--spin]\n");
        return 2;
    }
    char bodyj[1024];
    int blen = snprintf(bodyj, sizeof bodyj,
                        "{\"model\":\"bench\",\"stream\":true,%s\"max_tokens\":%d,"
                        "\"messages\":[{\"role\":\"user\",\"content\":\"Say something about "
                        "metering proxies, briefly.\"}]}",
                        o.include_usage ? "\"stream_options\":{\"include_usage\":true}," : "",
                        o.max_tokens);
    char auth[600] = "";
    if (o.key[0]) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", o.key);
    req_len = (size_t)snprintf(req, sizeof req,
                               "POST %s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Type: "
                               "application/json\r\nx-mock-stamp: 1\r\nx-mock-interval-ms: "
                               "%d\r\nContent-Length: %d\r\n\r\n%s",
                               o.path, o.host, o.port, auth, o.interval_ms, blen, bodyj);

    int ep = epoll_create1(0);
    int nconn = o.conc < o.streams ? o.conc : o.streams;
    conn_t *cs = calloc((size_t)nconn, sizeof *cs);
    int64_t w0 = now_ns();
    for (int i = 0; i < nconn; i++) {
        cs[i].fd = connect_one();
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
        start(&cs[i]);
    }
    static char buf[65536];
    while (finished < o.streams) {
        struct epoll_event evs[64];
        int k;
        if (o.spin) {
            int64_t since = now_ns();
            while ((k = epoll_wait(ep, evs, 64, 0)) == 0 && now_ns() - since < 30000000000)
                ;
        } else
            k = epoll_wait(ep, evs, 64, 30000);
        if (k == 0) {
            fprintf(stderr, "stalled: no bytes for 30 s\n");
            return 1;
        }
        if (k < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int j = 0; j < k; j++) {
            conn_t *c = evs[j].data.ptr;
            ssize_t n = read(c->fd, buf, sizeof buf);
            int64_t t = now_ns();
            if (n <= 0) {
                fprintf(stderr, "connection closed by the server (%zd)\n", n);
                return 1;
            }
            if (feed(c, buf, (size_t)n, t)) {
                stream_end(c);
                if (issued < o.streams) start(c);
            }
        }
    }
    double wall = (double)(now_ns() - w0) / 1e9;

    FILE *f = fopen(o.out, "w");
    if (!f) {
        perror(o.out);
        return 1;
    }
    fprintf(f,
            "{\"way\":\"%s\",\"includeUsage\":%s,\"streams\":%d,\"bad\":%d,\"events\":%lld,"
            "\"unstamped\":%lld,\"usageChunks\":%lld,\"usageNull\":%lld,\"wall\":%.3f,",
            o.way, o.include_usage ? "true" : "false", finished, bad, tot_events, unstamped,
            usage_chunks, usage_null, wall);
    put_vec(f, "lat", &lat);
    fputc(',', f);
    put_vec(f, "ttft", &ttft);
    fputs("}\n", f);
    fclose(f);
    qsort(lat.v, lat.n, sizeof *lat.v, cmp64);
    fprintf(stderr,
            "%s: %d streams (%d bad), %lld events, %lld unstamped, %lld usage chunks, %lld "
            "\"usage\":null, %.1f s; chunk p50 %.3f ms\n",
            o.way, finished, bad, tot_events, unstamped, usage_chunks, usage_null, wall,
            lat.n ? (double)lat.v[lat.n / 2] / 1e6 : 0.0);
    return bad || unstamped ? 1 : 0;
}
