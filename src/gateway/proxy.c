/* Upstream client: the native client (h1.h) first, and libcurl's multi
 * interface, driven by a libuv loop, for what it refuses: curl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION → uv_poll) and when to wake it
 * (CURLMOPT_TIMERFUNCTION → uv_timer); we hand readiness back with
 * curl_multi_socket_action. Connections are cached by the multi handle, so
 * keep-alive to upstreams is shared by all transfers of a worker.
 *
 * Transfers are pooled: an easy handle is reset and reused, and the request
 * header list is built from nodes inside the pooled struct, so a request
 * costs no malloc here once the pool is warm. */
#include "gateway/proxy.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/h1.h"
#include "gateway/h1url.h"
#include "util/log.h"

struct tg_proxy_req {
    struct tg_proxy_base base; /* native = 0 */
    tg_proxy_t *p;
    CURL *easy;
    const tg_proxy_handler_t *h;
    void *ud;
    struct tg_proxy_req *next_free;
    struct curl_slist nodes[TG_PROXY_MAX_HEADERS + 4];
    char errbuf[CURL_ERROR_SIZE];
    int up_paused, down_paused;
    int pause_next; /* on_body asked for a pause: the next bytes are refused */
    int interim;    /* inside a 1xx response head: its headers are swallowed */
    int active;
    char reason[64];
    size_t reason_len;
};

struct tg_proxy {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    tg_proxy_req_t *free_list;
    tg_h1_t *h1;   /* the native client, see h1.h; NULL with TOLLGATE_NO_NATIVE_HTTP */
    int fell_back; /* a transfer the native client refused went to libcurl: said once */
    int closing;
};

typedef struct sock_ctx {
    uv_poll_t poll;
    tg_proxy_t *p;
    curl_socket_t fd;
} sock_ctx_t;

static void check_done(tg_proxy_t *p)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(p->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        tg_proxy_req_t *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(p->multi, r->easy);
        r->active = 0;
        tg_proxy_result_t res = TG_PROXY_ERROR;
        switch (rc) {
        case CURLE_OK: res = TG_PROXY_OK; break;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST: res = TG_PROXY_CONNECT; break;
        case CURLE_OPERATION_TIMEDOUT: res = TG_PROXY_TIMEOUT; break;
        default: break;
        }
        const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
        const tg_proxy_handler_t *h = r->h;
        void *ud = r->ud;
        r->next_free = p->free_list;
        p->free_list = r;
        /* The detail string lives in r, which stays allocated (pooled) and is
         * not reused before the callback returns unless it starts a new
         * transfer; copy it first. */
        char msg[CURL_ERROR_SIZE];
        snprintf(msg, sizeof msg, "%s", detail);
        h->on_done(ud, res, msg);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx_t *s = h->data;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(s->p->multi, s->fd, flags, &running);
    check_done(s->p);
}

static void on_timer(uv_timer_t *t)
{
    tg_proxy_t *p = t->data;
    int running;
    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(p);
}

static void free_sock(uv_handle_t *h)
{
    free(h->data);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    tg_proxy_t *p = userp;
    sock_ctx_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, free_sock);
            curl_multi_assign(p->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        s->p = p;
        s->fd = fd;
        s->poll.data = s;
        if (uv_poll_init_socket(p->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        curl_multi_assign(p->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    tg_proxy_t *p = userp;
    if (p->closing) return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&p->timer);
    else
        uv_timer_start(&p->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

tg_proxy_t *tg_proxy_new(uv_loop_t *loop)
{
    tg_proxy_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->loop = loop;
    p->multi = curl_multi_init();
    if (!p->multi) {
        free(p);
        return NULL;
    }
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
    /* Idle upstream connections kept for reuse. The default (4 per easy
     * handle added) shrinks to nothing between bursts. */
    curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, 1024L);
    p->h1 = getenv("TOLLGATE_NO_NATIVE_HTTP") ? NULL : tg_h1_new(loop);
    return p;
}

static void free_proxy(uv_handle_t *h)
{
    free(h->data);
}

void tg_proxy_free(tg_proxy_t *p)
{
    if (!p) return;
    p->closing = 1;
    tg_h1_free(p->h1);
    /* Active transfers belong to connections, which abort them before this;
     * whatever is left is torn down without callbacks. */
    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, NULL);
    curl_multi_cleanup(p->multi);
    while (p->free_list) {
        tg_proxy_req_t *r = p->free_list;
        p->free_list = r->next_free;
        curl_easy_cleanup(r->easy);
        free(r);
    }
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, free_proxy);
}

static size_t header_cb(char *buf, size_t size, size_t n, void *ud)
{
    tg_proxy_req_t *r = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* Status line: "HTTP/1.1 200 OK\r\n" or "HTTP/2 200 \r\n". */
        const char *sp = memchr(buf, ' ', len);
        int code = 0;
        r->reason_len = 0;
        if (sp && (size_t)(sp - buf) + 4 <= len) {
            code = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
            const char *rs = sp + 4, *end = buf + len;
            while (rs < end && *rs == ' ')
                rs++;
            while (end > rs && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
            r->reason_len = (size_t)(end - rs) < sizeof r->reason ? (size_t)(end - rs) : 0;
            memcpy(r->reason, rs, r->reason_len);
        }
        r->interim = code >= 100 && code < 200;
        return len;
    }
    if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        if (r->interim) {
            r->interim = 0;
            return len;
        }
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        r->h->on_head_done(r->ud, (int)status, r->reason, r->reason_len);
        if (r->h->on_flush) r->h->on_flush(r->ud);
        return len;
    }
    if (r->interim) return len;
    const char *colon = memchr(buf, ':', len);
    if (!colon) return len; /* obs-fold continuation or junk: dropped */
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    r->h->on_header(r->ud, buf, (size_t)(colon - buf), v, (size_t)(end - v));
    return len;
}

static size_t write_cb(char *ptr, size_t size, size_t n, void *ud)
{
    tg_proxy_req_t *r = ud;
    if (r->pause_next) {
        /* Refused bytes are offered again after the unpause. */
        r->pause_next = 0;
        r->down_paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    int rc = r->h->on_body(r->ud, ptr, size * n);
    if (rc < 0) return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    if (rc == 1) r->pause_next = 1;
    return size * n;
}

static size_t read_cb(char *buf, size_t size, size_t n, void *ud)
{
    tg_proxy_req_t *r = ud;
    size_t got = r->h->read_body(r->ud, buf, size * n);
    if (got == TG_PROXY_PAUSE) {
        r->up_paused = 1;
        return CURL_READFUNC_PAUSE;
    }
    if (got == TG_PROXY_ABORT) return CURL_READFUNC_ABORT;
    return got;
}

tg_proxy_req_t *tg_proxy_start(tg_proxy_t *p, const tg_proxy_spec_t *spec,
                               const tg_proxy_handler_t *h, void *ud)
{
    if (spec->nheaders > TG_PROXY_MAX_HEADERS) return NULL;
    if (p->h1) {
        tg_proxy_req_t *n = tg_h1_start(p->h1, spec, h, ud);
        if (n) return n;
        /* Not silently: libcurl differs (it took a TLS end without close_notify as the end
         * of a read-until-close answer in tests/e2e/tls.test.mjs). Only the target is named
         * (the config refuses credentials in it); the path and query may hold secrets. */
        if (!p->fell_back) {
            p->fell_back = 1;
            TG_WARN("upstream target %.*s: not taken by the native client (an address it "
                    "cannot parse, a ca_file it cannot load, or out of memory): this worker "
                    "sends such requests through libcurl",
                    (int)tg_h1url_target_len(spec->url), spec->url);
        }
    }
    tg_proxy_req_t *r = p->free_list;
    if (r) {
        p->free_list = r->next_free;
        curl_easy_reset(r->easy);
    } else {
        r = calloc(1, sizeof *r);
        if (!r) return NULL;
        r->p = p;
        r->easy = curl_easy_init();
        if (!r->easy) {
            free(r);
            return NULL;
        }
    }
    r->h = h;
    r->ud = ud;
    r->up_paused = r->down_paused = r->interim = r->pause_next = 0;
    r->errbuf[0] = '\0';
    r->reason_len = 0;

    /* Header list from the pooled nodes; curl only reads it. "Expect:" stops
     * curl from waiting on 100-continue, "Accept:" from adding a default. */
    size_t k = 0;
    static const char *const extra[] = {"Expect:", "Accept:"};
    int has_accept = 0;
    for (size_t i = 0; i < spec->nheaders; i++) {
        if (strncasecmp(spec->headers[i], "accept:", 7) == 0) has_accept = 1;
        r->nodes[k].data = (char *)spec->headers[i];
        r->nodes[k].next = &r->nodes[k + 1];
        k++;
    }
    for (size_t i = 0; i < 2; i++) {
        if (i == 1 && has_accept) continue;
        r->nodes[k].data = (char *)extra[i];
        r->nodes[k].next = &r->nodes[k + 1];
        k++;
    }
    r->nodes[k - 1].next = NULL;

    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, spec->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->nodes);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Upstreams are reached directly: a proxy in the environment (HTTPS_PROXY)
     * would also put its CONNECT reply into the response head. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, spec->connect_timeout_ms);
    if (spec->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, spec->ca_file);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, spec->timeout_ms);
    if (spec->idle_timeout_ms > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        long secs = (spec->idle_timeout_ms + 999) / 1000;
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, secs);
    }
    if (strcmp(spec->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (spec->has_body) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(e, CURLOPT_READDATA, r);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)spec->body_len);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec->method);
    } else if (strcmp(spec->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec->method);
    }
    if (curl_multi_add_handle(p->multi, e) != CURLM_OK) {
        r->next_free = p->free_list;
        p->free_list = r;
        return NULL;
    }
    r->active = 1;
    return r;
}

static void apply_pause(tg_proxy_req_t *r)
{
    if (!r->active) return;
    int mask = (r->up_paused ? CURLPAUSE_SEND : 0) | (r->down_paused ? CURLPAUSE_RECV : 0);
    curl_easy_pause(r->easy, mask);
}

void tg_proxy_resume_upload(tg_proxy_req_t *r)
{
    if (r->base.native) {
        tg_h1_resume_upload(r);
        return;
    }
    if (!r->up_paused) return;
    r->up_paused = 0;
    apply_pause(r);
}

void tg_proxy_resume_download(tg_proxy_req_t *r)
{
    if (r->base.native) {
        tg_h1_resume_download(r);
        return;
    }
    r->pause_next = 0;
    if (!r->down_paused) return;
    r->down_paused = 0;
    apply_pause(r);
}

void tg_proxy_abort(tg_proxy_req_t *r)
{
    if (r->base.native) {
        tg_h1_abort(r);
        return;
    }
    tg_proxy_t *p = r->p;
    if (r->active) curl_multi_remove_handle(p->multi, r->easy);
    r->active = 0;
    r->next_free = p->free_list;
    p->free_list = r;
}
