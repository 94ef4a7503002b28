/* The exchange driven from fuzz bytes, shared by fuzz_exchange.c (AI routes) and
 * fuzz_mcp.c (MCP JSON-RPC). Input layout:
 *   byte 0   the path (and so the endpoint) among the caller's paths
 *   byte 1   bits 0-1 the Content-Type, bits 2-3 the status, bit 4 a small token cap,
 *            bit 5 a client that goes away after some bytes
 *   bytes 2-3 seed the piece sizes
 *   then the request body, the separator "\n--8<--\n", the response body.
 * The response is read twice on one tg_xchg_t (as a connection reuses it): whole, then in
 * pieces. Checks: the client receives exactly the upstream's bytes unless the stream is
 * rewritten; both readings emit the same bytes and fill the same event; a rewritten
 * request is still JSON and asks for usage; an MCP refusal is well-formed JSON. */
#ifndef TG_FUZZ_XCHG_H
#define TG_FUZZ_XCHG_H

#include <jansson.h>

#include "fuzz.h"
#include "meter/exchange.h"

#define XCHG_SEP "\n--8<--\n"

struct sink {
    fz_log_t out;
    size_t fail_after; /* emit fails once this many bytes went out (SIZE_MAX: never) */
};

static int xchg_emit(void *ud, const char *p, size_t n)
{
    struct sink *s = ud;
    if (s->out.len + n > s->fail_after) return -1;
    fz_log_add(&s->out, p, n);
    return 0;
}

struct xchg_result {
    tg_event_t ev;
    int unparsed, rewrites, rc;
    struct sink sink;
};

static void xchg_read(tg_xchg_t *x, tg_route_kind_t kind, const char *path, const char *req,
                      size_t reqn, int status, const char *ctype, const char *resp, size_t respn,
                      fz_split_t *sp, size_t fail_after, struct xchg_result *r)
{
    memset(r, 0, sizeof *r);
    r->sink.fail_after = fail_after;
    tg_xchg_begin(x, kind, path, strlen(path));
    const char *out = NULL;
    size_t outlen = 0;
    tg_xchg_request(x, req, reqn, &out, &outlen);
    if (out) {
        /* Only a JSON body that asked for a stream is rewritten, and it stays JSON that
         * asks for usage. jansson refuses some valid JSON (a \u0000 inside a key): then it
         * must refuse the client's body as well. */
        json_error_t jerr;
        json_t *j = json_loadb(out, outlen, JSON_ALLOW_NUL, &jerr);
        if (j) {
            FZ_CHECK(json_is_true(
                json_object_get(json_object_get(j, "stream_options"), "include_usage")));
            json_decref(j);
        } else {
            FZ_CHECK(json_loadb(req, reqn, JSON_ALLOW_NUL, &jerr) == NULL);
        }
    }
    (void)tg_xchg_model(x);
    (void)tg_xchg_max_output(x);
    (void)tg_xchg_counts_tokens(x);
    (void)tg_xchg_request_unreadable(x);
    for (size_t i = 0; i < tg_xchg_ntools(x); i++)
        FZ_CHECK(tg_xchg_tool(x, i) != NULL);
    if (kind == TG_ROUTE_MCP) {
        static char buf[1 << 16];
        size_t n = tg_xchg_mcp_error(x, "refused \"by\" \\ policy", buf, sizeof buf);
        FZ_CHECK(n < sizeof buf);
        if (n) {
            FZ_CHECK(strlen(buf) == n);
            json_error_t jerr;
            json_t *j = json_loadb(buf, n, JSON_ALLOW_NUL, &jerr);
            FZ_CHECK(j != NULL);
            json_decref(j);
        }
    }
    tg_xchg_response_head(x, status, ctype, ctype ? strlen(ctype) : 0);
    r->rewrites = tg_xchg_rewrites(x);
    for (size_t off = 0; off < respn && r->rc == 0;) {
        size_t k = sp ? fz_split_next(sp, respn - off) : respn - off;
        r->rc = tg_xchg_response_body(x, resp + off, k, xchg_emit, &r->sink);
        off += k;
    }
    if (r->rc == 0) r->rc = tg_xchg_response_end(x, xchg_emit, &r->sink);
    tg_xchg_finish(x, &r->ev, &r->unparsed);
}

static int xchg_one(const uint8_t *data, size_t size, tg_route_kind_t kind,
                    const char *const *paths, size_t npaths)
{
    if (size < 4) return 0;
    static const char *const ctypes[] = {"application/json", "text/event-stream",
                                         "Text/Event-Stream; charset=utf-8", NULL};
    static const int statuses[] = {200, 201, 400, 500};
    const char *path = paths[data[0] % npaths];
    const char *ctype = ctypes[data[1] & 3];
    int status = statuses[(data[1] >> 2) & 3];
    int small_cap = (data[1] >> 4) & 1;
    size_t fail_after = (data[1] >> 5) & 1 ? (size_t)data[2] * 7 : SIZE_MAX;
    uint32_t seed = (uint32_t)data[2] << 8 | data[3];
    const uint8_t *req = data + 4;
    size_t reqn = size - 4, respn = 0;
    const uint8_t *resp = fz_cut(req, &reqn, XCHG_SEP, &respn);
    if (!resp) resp = req + reqn;

    tg_xchg_t *x = tg_xchg_new();
    FZ_CHECK(x != NULL);
    if (small_cap) tg_xchg_set_token_max(x, 1 + seed % 512);
    static struct xchg_result whole, split;
    fz_split_t sp;
    fz_split_init(&sp, seed);
    xchg_read(x, kind, path, (const char *)req, reqn, status, ctype, (const char *)resp, respn,
              NULL, fail_after, &whole);
    xchg_read(x, kind, path, (const char *)req, reqn, status, ctype, (const char *)resp, respn, &sp,
              fail_after, &split);
    tg_xchg_free(x);

    if (fail_after == SIZE_MAX) {
        FZ_CHECK(whole.rc == 0 && split.rc == 0);
        FZ_CHECK(whole.rewrites == split.rewrites);
        if (!whole.rewrites)
            FZ_CHECK(whole.sink.out.len == respn &&
                     (respn == 0 || memcmp(whole.sink.out.p, resp, respn) == 0));
        FZ_CHECK(fz_log_eq(&whole.sink.out, &split.sink.out));
        /* A token cap is counted per piece fed (jpick.h): only without it must the two
         * readings agree on what was understood. */
        if (!small_cap) {
            FZ_CHECK(whole.unparsed == split.unparsed);
            FZ_CHECK(whole.ev.tokens_in == split.ev.tokens_in);
            FZ_CHECK(whole.ev.tokens_out == split.ev.tokens_out);
            FZ_CHECK(whole.ev.tokens_cached == split.ev.tokens_cached);
            FZ_CHECK(whole.ev.tokens_cache_write == split.ev.tokens_cache_write);
            FZ_CHECK(strcmp(whole.ev.model, split.ev.model) == 0);
            FZ_CHECK(strcmp(whole.ev.reason, split.ev.reason) == 0);
            FZ_CHECK(strcmp(whole.ev.tool, split.ev.tool) == 0);
            FZ_CHECK(strcmp(whole.ev.rpc_method, split.ev.rpc_method) == 0);
        }
    }
    fz_log_free(&whole.sink.out);
    fz_log_free(&split.sink.out);
    return 0;
}

#endif
