/* Admin listener: see admin.h. Requests are parsed with http_parser like the
 * gateway's, but kept tiny (4 KiB head cap, no bodies) and answered with
 * Connection: close. Each connection has a deadline, as on the gateway: its request
 * within server.header_timeout, then its answer taken by the client within
 * server.idle_timeout; a slow or silent client is closed, never held. */
#include "admin/admin.h"

#include <http_parser.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_HEAD_MAX 4096

struct tg_admin {
    uv_tcp_t tcp;
    tg_admin_ops_t ops; /* the server's answers (admin.h) */
    void *ctx;          /* their argument */
    struct aconn *conns;
};

typedef struct aconn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the deadline of the current phase (request, then answer) */
    int open_handles; /* freed when both handles are closed */
    tg_admin_t *a;
    struct aconn *prev, *next;
    http_parser parser;
    char url[256];
    size_t url_len, head_bytes;
    char rbuf[2048];
    int done;
} aconn_t;

typedef struct awrite {
    uv_write_t req;
    char data[];
} awrite_t;

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_aconn_closed(uv_handle_t *h)
{
    aconn_t *c = h->data;
    if (--c->open_handles == 0) free(c);
}

static void close_handles(aconn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    uv_close((uv_handle_t *)&c->tcp, on_aconn_closed);
    uv_close((uv_handle_t *)&c->timer, on_aconn_closed);
}

static void aconn_close(aconn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (c->prev)
        c->prev->next = c->next;
    else if (c->a)
        c->a->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    close_handles(c);
}

static void on_deadline(uv_timer_t *t)
{
    aconn_close(t->data);
}

/* ms from the server (tg_admin_ops_t): its current config, read on the main thread. */
static void arm(aconn_t *c, long ms)
{
    if (c->a && ms > 0) uv_timer_start(&c->timer, on_deadline, (uint64_t)ms, 0);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    aconn_t *c = req->handle->data;
    free(req);
    aconn_close(c);
}

static void respond_text(aconn_t *c, int status, const char *ctype, char *js)
{
    size_t bl = js ? strlen(js) : 0;
    awrite_t *w = malloc(sizeof *w + bl + 256);
    if (!w) {
        free(js);
        aconn_close(c);
        return;
    }
    int hl = snprintf(w->data, 256,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: "
                      "%zu\r\nConnection: close\r\n\r\n",
                      status,
                      status == 200   ? "OK"
                      : status == 404 ? "Not Found"
                      : status == 400 ? "Bad Request"
                                      : "Service Unavailable",
                      ctype, bl + 1);
    memcpy(w->data + hl, js ? js : "", bl);
    w->data[hl + bl] = '\n';
    free(js);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(hl + bl + 1));
    arm(c, c->a ? c->a->ops.idle_timeout_ms(c->a->ctx) : 0); /* a client that never reads */
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(w);
        aconn_close(c);
    }
}

static void respond(aconn_t *c, int status, json_t *body)
{
    char *js = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    respond_text(c, status, "application/json", js);
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    aconn_t *c = p->data;
    if (c->url_len + n >= sizeof c->url) return -1;
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    aconn_t *c = p->data;
    c->done = 1;
    char *q = strchr(c->url, '?');
    if (q) *q = '\0';
    if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
        respond(c, 404,
                json_pack("{s:{s:s,s:s}}", "error", "type", "not_found", "message",
                          "admin endpoints answer GET"));
    } else if (strcmp(c->url, "/healthz") == 0) {
        respond(c, 200, json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(c->url, "/readyz") == 0) {
        json_t *o = json_object();
        int ready = c->a->ops.ready(c->a->ctx, o);
        respond(c, ready ? 200 : 503, o);
    } else if (strcmp(c->url, "/metrics") == 0) {
        char *text = c->a->ops.metrics(c->a->ctx);
        respond_text(c, 200, "text/plain; version=0.0.4", text);
    } else {
        respond(c, 404,
                json_pack("{s:{s:s,s:s}}", "error", "type", "not_found", "message",
                          "no such admin endpoint"));
    }
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_message_complete = on_message_complete,
};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    aconn_t *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    aconn_t *c = s->data;
    if (nread < 0) {
        aconn_close(c);
        return;
    }
    if (c->done || nread == 0) return;
    c->head_bytes += (size_t)nread;
    http_parser_execute(&c->parser, &settings, buf->base, (size_t)nread);
    if (c->done) {
        uv_read_stop(s);
        return;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e != HPE_OK || c->head_bytes > ADMIN_HEAD_MAX) {
        c->done = 1;
        uv_read_stop(s);
        respond(c, 400,
                json_pack("{s:{s:s,s:s}}", "error", "type", "invalid_request", "message",
                          "malformed request"));
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    tg_admin_t *a = server->data;
    if (status < 0) return;
    aconn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    c->a = a;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    uv_timer_init(server->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->a = NULL;
        close_handles(c);
        return;
    }
    arm(c, a->ops.header_timeout_ms(a->ctx)); /* slowloris: the request, whole */
    c->next = a->conns;
    if (a->conns) a->conns->prev = c;
    a->conns = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

tg_admin_t *tg_admin_start(uv_loop_t *loop, int fd, const char *listen, const tg_admin_ops_t *ops,
                           void *ctx, tg_err_t *err)
{
    tg_admin_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->ops = *ops;
    a->ctx = ctx;
    uv_tcp_init(loop, &a->tcp);
    a->tcp.data = a;
    int rc = uv_tcp_open(&a->tcp, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&a->tcp, 128, on_connection);
    if (rc != 0) {
        tg_err_set(err, "admin listen on %s: %s", listen, uv_strerror(rc));
        uv_close((uv_handle_t *)&a->tcp, on_listener_closed);
        return NULL;
    }
    return a;
}

void tg_admin_stop(tg_admin_t *a)
{
    while (a->conns) {
        aconn_t *c = a->conns;
        a->conns = c->next;
        c->prev = NULL;
        c->next = NULL;
        c->a = NULL;
        close_handles(c);
    }
    uv_close((uv_handle_t *)&a->tcp, on_listener_closed);
}
