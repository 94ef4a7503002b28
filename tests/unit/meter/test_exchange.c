/* Tests src/meter/exchange.c: the include_usage injection into requests (bytes kept, or
 * rewritten through jansson), the rewritten OpenAI stream (emitted bytes equal to the stream
 * the client would have got without tollgate, under every cut of the input and three line
 * endings), streams and JSON bodies passed untouched while their usage is read (huge bodies
 * read as they pass, the token cap, nested "usage" members ignored), MCP requests, answers and
 * refusals, the event over the cap that ends the rewriting, and one tg_xchg_t reused across many
 * requests.
 *
 * Fixtures are written with \n line ends and converted to \r\n or \r where a test runs a
 * stream under every line ending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "meter/compress.h"
#include "meter/exchange.h"
#include "util/jpick.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- harness ---------------------------------------------------------------- */

/* What the emit callback received. fail_at: the call (1-based) from which emit fails. */
struct out {
    char *p;
    size_t len, cap;
    int calls, fail_at;
};

static int collect(void *ud, const char *p, size_t n)
{
    struct out *o = ud;
    o->calls++;
    assert_true(n > 0); /* nothing to send is not a call */
    if (o->fail_at && o->calls >= o->fail_at) return -1;
    if (o->len + n > o->cap) {
        size_t nc = o->cap ? o->cap : 4096;
        while (nc < o->len + n)
            nc *= 2;
        o->p = realloc(o->p, nc);
        assert_non_null(o->p);
        o->cap = nc;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
    return 0;
}

struct req {
    tg_route_kind_t kind;
    const char *path;
    const char *body;
    size_t blen;
};

struct resp {
    int status;
    const char *ctype;
    const char *body;
    size_t len;
};

struct result {
    struct out o;
    tg_event_t ev;
    int unparsed;
    int rewrites;
    int req_rewritten;
};

/* As the connection starts an event: tokens unknown until the exchange fills them. */
static void event_init(tg_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->tokens_in = ev->tokens_out = ev->tokens_cached = ev->tokens_cache_write = TG_TOKENS_UNKNOWN;
}

static void result_free(struct result *r)
{
    free(r->o.p);
    r->o.p = NULL;
}

static void request(tg_xchg_t *x, const struct req *rq, const char **out, size_t *outlen)
{
    tg_xchg_begin(x, rq->kind, rq->path, strlen(rq->path));
    tg_xchg_request(x, rq->body, rq->blen, out, outlen);
}

/* One whole exchange on x. The response body is fed cut at the offsets in cuts (ascending)
 * when ncuts > 0, else in pieces of step bytes (0: whole). When expect is given, what has
 * been emitted after every piece must be a prefix of it (nothing reordered, nothing sent
 * twice); when the stream is not rewritten, every byte fed must already have been emitted
 * (pass-through holds nothing back). */
static void run(tg_xchg_t *x, const struct req *rq, const struct resp *rs, size_t step,
                const size_t *cuts, size_t ncuts, const char *expect, size_t elen, struct result *r)
{
    memset(r, 0, sizeof *r);
    event_init(&r->ev);
    const char *out;
    size_t outlen;
    request(x, rq, &out, &outlen);
    r->req_rewritten = out != NULL;
    tg_xchg_response_head(x, rs->status, rs->ctype, rs->ctype ? strlen(rs->ctype) : 0);
    r->rewrites = tg_xchg_rewrites(x);
    size_t off = 0, k = 0, checked = 0;
    while (off < rs->len) {
        size_t end;
        if (ncuts)
            end = k < ncuts ? cuts[k++] : rs->len;
        else
            end = step && off + step < rs->len ? off + step : rs->len;
        assert_true(end >= off && end <= rs->len);
        /* Each piece in a buffer of its own, freed after the call, as a socket read would
         * be: under ASan a read outside the piece, or a pointer kept past the call, fails. */
        char *piece = malloc(end - off + 1);
        assert_non_null(piece);
        memcpy(piece, rs->body + off, end - off);
        assert_int_equal(tg_xchg_response_body(x, piece, end - off, collect, &r->o), 0);
        free(piece);
        off = end;
        if (!r->rewrites) assert_int_equal(r->o.len, off);
        if (expect && r->o.len > checked) {
            assert_true(r->o.len <= elen);
            assert_memory_equal(r->o.p + checked, expect + checked, r->o.len - checked);
            checked = r->o.len;
        }
    }
    assert_int_equal(tg_xchg_response_end(x, collect, &r->o), 0);
    tg_xchg_finish(x, &r->ev, &r->unparsed);
}

/* r must have emitted expect and reported the same as ref. */
static void check_same(const struct result *ref, const struct result *r, const char *expect,
                       size_t elen, const char *how, size_t a, size_t b)
{
    int same_out = r->o.len == elen && (elen == 0 || memcmp(r->o.p, expect, elen) == 0);
    if (same_out && r->unparsed == ref->unparsed && r->rewrites == ref->rewrites &&
        memcmp(&r->ev, &ref->ev, sizeof r->ev) == 0)
        return;
    print_error("mismatch with the input fed %s (%zu, %zu)\n", how, a, b);
    assert_int_equal(r->o.len, elen);
    assert_memory_equal(r->o.p, expect, elen);
    assert_int_equal(r->unparsed, ref->unparsed);
    assert_int_equal(r->rewrites, ref->rewrites);
    assert_int_equal(r->ev.tokens_in, ref->ev.tokens_in);
    assert_int_equal(r->ev.tokens_out, ref->ev.tokens_out);
    assert_int_equal(r->ev.tokens_cached, ref->ev.tokens_cached);
    assert_int_equal(r->ev.tokens_cache_write, ref->ev.tokens_cache_write);
    assert_string_equal(r->ev.model, ref->ev.model);
    assert_string_equal(r->ev.reason, ref->ev.reason);
    assert_string_equal(r->ev.tool, ref->ev.tool);
    assert_string_equal(r->ev.rpc_method, ref->ev.rpc_method);
    fail();
}

/* The exchange with the response fed whole (into ref, which the caller checks and frees),
 * one byte at a time, cut in two at every offset and, when three, in three on a grid of
 * offsets: every time the emitted bytes must equal expect and the event must equal ref's. */
static void all_splits(tg_xchg_t *x, const struct req *rq, const struct resp *rs,
                       const char *expect, size_t elen, int three, struct result *ref)
{
    run(x, rq, rs, 0, NULL, 0, expect, elen, ref);
    check_same(ref, ref, expect, elen, "whole", 0, 0);
    struct result r;
    run(x, rq, rs, 1, NULL, 0, expect, elen, &r);
    check_same(ref, &r, expect, elen, "one byte at a time", 0, 0);
    result_free(&r);
    for (size_t c = 0; c <= rs->len; c++) {
        size_t cuts[1] = {c};
        run(x, rq, rs, 0, cuts, 1, expect, elen, &r);
        check_same(ref, &r, expect, elen, "in two at", c, 0);
        result_free(&r);
    }
    if (!three) return;
    for (size_t i = 1; i < rs->len; i += 13) {
        for (size_t j = i; j < rs->len; j += 17) {
            size_t cuts[2] = {i, j};
            run(x, rq, rs, 0, cuts, 2, expect, elen, &r);
            check_same(ref, &r, expect, elen, "in three at", i, j);
            result_free(&r);
        }
    }
}

/* A fixture written with \n line ends, with every \n replaced by eol. */
static char *with_eol(const char *lf, const char *eol, size_t *len)
{
    size_t el = strlen(eol), n = 0;
    for (const char *s = lf; *s; s++)
        n += *s == '\n' ? el : 1;
    char *p = malloc(n + 1);
    assert_non_null(p);
    size_t k = 0;
    for (const char *s = lf; *s; s++) {
        if (*s == '\n') {
            memcpy(p + k, eol, el);
            k += el;
        } else {
            p[k++] = *s;
        }
    }
    p[k] = '\0';
    *len = k;
    return p;
}

/* A growing string for the large fixtures. */
struct sb {
    char *p;
    size_t len, cap;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1)
            nc *= 2;
        b->p = realloc(b->p, nc);
        assert_non_null(b->p);
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static const char *const eols[] = {"\n", "\r\n", "\r"};
static const char *const eol_names[] = {"LF", "CRLF", "CR"};

/* ---- fixtures: OpenAI chat stream -------------------------------------------- */

#define CHAT_REQ                                                                                   \
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}],"     \
    "\"stream\":true}"

#define CHUNK                                                                                      \
    "{\"id\":\"chatcmpl-AX9kQ2\",\"object\":\"chat.completion.chunk\",\"created\":1732350000,"     \
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":["
#define C_ROLE                                                                                     \
    CHUNK "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"     \
          "\"logprobs\":null,\"finish_reason\":null}]"
#define C_HELLO                                                                                    \
    CHUNK "{\"index\":0,\"delta\":{\"content\":\"H\xc3\xa9llo \xf0\x9f\x91\x8b\"},"                \
          "\"logprobs\":null,\"finish_reason\":null}]"
/* Text that quotes the member being removed: escaped, so it is never the member. */
#define C_TRICKY                                                                                   \
    CHUNK "{\"index\":0,\"delta\":{\"content\":\" The \\\"usage\\\":null, field\"},"               \
          "\"logprobs\":null,\"finish_reason\":null}]"
#define C_STOP CHUNK "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]"
#define C_USAGE                                                                                    \
    CHUNK "],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29,"        \
          "\"prompt_tokens_details\":{\"cached_tokens\":6,\"audio_tokens\":0},"                    \
          "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"              \
          "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}"

/* As the upstream sends it when asked for usage. */
static const char chat_with_usage[] = "data: " C_ROLE ",\"usage\":null}\n\n"
                                      "data: " C_HELLO ",\"usage\":null}\n\n"
                                      "data: " C_TRICKY ",\"usage\":null}\n\n"
                                      "data: " C_STOP ",\"usage\":null}\n\n"
                                      "data: " C_USAGE "\n\n"
                                      "data: [DONE]\n\n";
/* As it sends it when not asked: what the client must receive. */
static const char chat_plain[] = "data: " C_ROLE "}\n\n"
                                 "data: " C_HELLO "}\n\n"
                                 "data: " C_TRICKY "}\n\n"
                                 "data: " C_STOP "}\n\n"
                                 "data: [DONE]\n\n";

/* Legacy completions: "usage":null in the middle and first, to remove either comma. */
#define CMPL       "\"id\":\"cmpl-9\",\"object\":\"text_completion\",\"created\":1732350001"
#define CMPL_MODEL "\"model\":\"gpt-3.5-turbo-instruct\""
static const char cmpl_with_usage[] =
    "data: {" CMPL ",\"choices\":[{\"text\":\"Once\",\"index\":0,\"logprobs\":null,"
    "\"finish_reason\":null}],\"usage\":null," CMPL_MODEL "}\n\n"
    "data: {\"usage\":null," CMPL ",\"choices\":[{\"text\":\" upon\",\"index\":0,"
    "\"logprobs\":null,\"finish_reason\":\"length\"}]," CMPL_MODEL "}\n\n"
    "data: {" CMPL ",\"choices\":[]," CMPL_MODEL ",\"usage\":{\"prompt_tokens\":5,"
    "\"completion_tokens\":2,\"total_tokens\":7}}\n\n"
    "data: [DONE]\n\n";
static const char cmpl_plain[] =
    "data: {" CMPL ",\"choices\":[{\"text\":\"Once\",\"index\":0,\"logprobs\":null,"
    "\"finish_reason\":null}]," CMPL_MODEL "}\n\n"
    "data: {" CMPL ",\"choices\":[{\"text\":\" upon\",\"index\":0,"
    "\"logprobs\":null,\"finish_reason\":\"length\"}]," CMPL_MODEL "}\n\n"
    "data: [DONE]\n\n";

/* ---- fixtures: streams passed untouched ----------------------------------------- */

static const char responses_stream[] =
    "event: response.created\n"
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":"
    "\"resp_67c9\",\"object\":\"response\",\"created_at\":1741290958,\"status\":"
    "\"in_progress\",\"model\":\"gpt-4.1-mini-2025-04-14\",\"output\":[],\"usage\":null}}\n"
    "\n"
    "event: response.output_text.delta\n"
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":"
    "\"msg_67c9\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n"
    "\n"
    "event: response.completed\n"
    "data: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":"
    "\"resp_67c9\",\"object\":\"response\",\"status\":\"completed\",\"model\":"
    "\"gpt-4.1-mini-2025-04-14\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":"
    "\"output_text\",\"text\":\"Hi\"}]}],\"usage\":{\"input_tokens\":37,"
    "\"input_tokens_details\":{\"cached_tokens\":5},\"output_tokens\":11,"
    "\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":48}}}\n"
    "\n";

static const char anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","
    "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":"
    "\"claude-3-5-haiku-20241022\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
    "\"input_tokens\":25,\"cache_creation_input_tokens\":40,\"cache_read_input_tokens\":300,"
    "\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Hello!\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

/* ---- 1. the request ------------------------------------------------------------ */

static void expect_request(tg_route_kind_t kind, const char *path, const char *body, size_t blen,
                           const char *want, size_t wlen)
{
    tg_xchg_t *x = tg_xchg_new();
    assert_non_null(x);
    const char *out = (const char *)1;
    size_t outlen = 99;
    tg_xchg_begin(x, kind, path, strlen(path));
    tg_xchg_request(x, body, blen, &out, &outlen);
    if (!want) {
        assert_null(out);
        assert_int_equal(outlen, 0);
    } else {
        assert_non_null(out);
        assert_int_equal(outlen, wlen);
        assert_memory_equal(out, want, wlen);
        /* And it is JSON that asks for usage. */
        json_error_t jerr;
        json_t *root = json_loadb(out, outlen, 0, &jerr);
        assert_non_null(root);
        assert_true(json_is_true(
            json_object_get(json_object_get(root, "stream_options"), "include_usage")));
        json_decref(root);
    }
    /* The stream is rewritten exactly when the request was. */
    tg_xchg_response_head(x, 200, S("text/event-stream; charset=utf-8"));
    assert_int_equal(tg_xchg_rewrites(x), want != NULL);
    tg_xchg_free(x);
}

static void test_request_member_appended(void **state)
{
    (void)state;
    /* Every byte the client sent is kept; the member goes before the last brace and the
     * whitespace after it stays. */
    expect_request(TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ),
                   S("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                     "\"Say hello\"}],\"stream\":true,\"stream_options\":{\"include_usage\":"
                     "true}}"));
    expect_request(TG_ROUTE_OPENAI, "/v1/chat/completions",
                   S("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"} }\"}],"
                     "\"stream\":true} \r\n\t"),
                   S("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"} }\"}],"
                     "\"stream\":true,\"stream_options\":{\"include_usage\":true}} \r\n\t"));
    /* Pretty-printed, as SDKs in some languages send it. */
    expect_request(
        TG_ROUTE_OPENAI, "/openai/v1/chat/completions",
        S("{\n  \"model\": \"gpt-4o\",\n  \"stream\": true,\n  \"temperature\": 0.7\n}\n"),
        S("{\n  \"model\": \"gpt-4o\",\n  \"stream\": true,\n  \"temperature\": 0.7\n"
          ",\"stream_options\":{\"include_usage\":true}}\n"));
    /* Legacy completions are streamed the same way. */
    expect_request(TG_ROUTE_OPENAI, "/v1/completions",
                   S("{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":\"Tell\",\"stream\":true}"),
                   S("{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":\"Tell\",\"stream\":true,"
                     "\"stream_options\":{\"include_usage\":true}}"));
}

static void test_request_stream_options_rewritten(void **state)
{
    (void)state;
    /* stream_options present: the body is rewritten through jansson, compact, in order. */
    expect_request(TG_ROUTE_OPENAI, "/v1/chat/completions",
                   S("{\"model\":\"gpt-4o-mini\", \"stream\": true, \"stream_options\": "
                     "{\"include_usage\": false}, \"messages\": [{\"role\": \"user\", "
                     "\"content\": \"Hi\"}]}"),
                   S("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{"
                     "\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":"
                     "\"Hi\"}]}"));
    expect_request(TG_ROUTE_OPENAI, "/v1/chat/completions",
                   S("{\"model\":\"m\",\"stream\":true,\"stream_options\":{}}"),
                   S("{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":"
                     "true}}"));
    /* "stream_options": null (allowed by the API) becomes the object. */
    expect_request(TG_ROUTE_OPENAI, "/v1/chat/completions",
                   S("{\"model\":\"m\",\"stream\":true,\"stream_options\":null}"),
                   S("{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":"
                     "true}}"));
    expect_request(TG_ROUTE_OPENAI, "/v1/chat/completions",
                   S("{\"model\":\"m\",\"stream_options\":{\"include_obfuscation\":false},"
                     "\"stream\":true}"),
                   S("{\"model\":\"m\",\"stream_options\":{\"include_obfuscation\":false,"
                     "\"include_usage\":true},\"stream\":true}"));
}

static void test_request_not_rewritten(void **state)
{
    (void)state;
    static const struct {
        tg_route_kind_t kind;
        const char *path, *body;
    } cases[] = {
        /* The client asked for usage itself. */
        {TG_ROUTE_OPENAI, "/v1/chat/completions",
         "{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"gpt-4o\",\"stream\":false}"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"gpt-4o\",\"messages\":[]}"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"gpt-4o\",\"stream\":\"true\"}"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"gpt-4o\",\"stream\":1}"},
        /* stream_options of the wrong type: left for the upstream to refuse. */
        {TG_ROUTE_OPENAI, "/v1/chat/completions",
         "{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":[]}"},
        /* Not JSON, not an object, truncated. */
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "model=gpt-4o&stream=true"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "[{\"stream\":true}]"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"gpt-4o\",\"stream\":true"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", ""},
        /* Endpoints whose streams carry usage anyway, or are not OpenAI's. */
        {TG_ROUTE_OPENAI, "/v1/responses", "{\"model\":\"gpt-4.1\",\"stream\":true}"},
        {TG_ROUTE_OPENAI, "/v1/embeddings", "{\"model\":\"e\",\"input\":\"x\",\"stream\":true}"},
        {TG_ROUTE_OPENAI, "/v1/models", "{\"model\":\"gpt-4o\",\"stream\":true}"},
        {TG_ROUTE_ANTHROPIC, "/v1/messages", "{\"model\":\"claude\",\"stream\":true}"},
        {TG_ROUTE_HTTP, "/v1/chat/completions", "{\"model\":\"gpt-4o\",\"stream\":true}"},
        {TG_ROUTE_MCP, "/mcp", "{\"model\":\"gpt-4o\",\"stream\":true}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_request(cases[i].kind, cases[i].path, cases[i].body, strlen(cases[i].body), NULL, 0);
}

static void test_request_fields(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    const char *out;
    size_t outlen;
    static const struct {
        tg_route_kind_t kind;
        const char *path, *body, *model;
        int64_t max_out;
    } cases[] = {
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"gpt-4o\",\"max_tokens\":100}",
         "gpt-4o", 100},
        /* max_completion_tokens wins over the deprecated max_tokens. */
        {TG_ROUTE_OPENAI, "/v1/chat/completions",
         "{\"max_tokens\":100,\"model\":\"o3\",\"max_completion_tokens\":4000}", "o3", 4000},
        {TG_ROUTE_OPENAI, "/v1/responses", "{\"model\":\"gpt-4.1\",\"max_output_tokens\":64}",
         "gpt-4.1", 64},
        /* The largest: a small field the endpoint ignores does not stand for its bound. */
        {TG_ROUTE_ANTHROPIC, "/v1/messages",
         "{\"model\":\"c\",\"max_completion_tokens\":1,\"max_tokens\":8000}", "c", 8000},
        {TG_ROUTE_OPENAI, "/v1/responses",
         "{\"model\":\"m\",\"max_tokens\":1,\"max_output_tokens\":900}", "m", 900},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"gpt-4o\"}", "gpt-4o", -1},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"m\",\"max_tokens\":-5}", "m", -1},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":7,\"max_tokens\":\"9\"}", "", -1},
        {TG_ROUTE_OPENAI, "/v1/embeddings", "{\"model\":\"text-embedding-3-small\"}",
         "text-embedding-3-small", 0},
        {TG_ROUTE_ANTHROPIC, "/v1/messages",
         "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":1024}", "claude-sonnet-4-20250514",
         1024},
        /* Longer than the event's field: truncated to 127 bytes. */
        {TG_ROUTE_OPENAI, "/v1/chat/completions",
         "{\"model\":"
         "\"012345678901234567890123456789012345678901234567890123456789012345678901234567890123456"
         "7890123456789012345678901234567890123456789\"}",
         "01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678"
         "90123456789012345678901234567890123456",
         -1},
        /* Not an endpoint tollgate recognises: still read, for an estimate. */
        {TG_ROUTE_OPENAI, "/v1/models", "{\"model\":\"gpt-4o\",\"max_tokens\":5}", "gpt-4o", 5},
        {TG_ROUTE_OPENAI, "/v1/moderations", "{\"model\":\"omni-moderation-latest\"}", "", -1},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "not json", "", -1},
        /* n answers (completions: best_of when larger), each up to the maximum, all billed. */
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"m\",\"n\":50,\"max_tokens\":100}",
         "m", 5000},
        {TG_ROUTE_OPENAI, "/v1/completions",
         "{\"model\":\"m\",\"n\":2,\"best_of\":8,\"max_tokens\":10}", "m", 80},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"m\",\"n\":5e1,\"max_tokens\":10}",
         "m", 10240}, /* a real (50.0 to a lax provider): the worst case */
        {TG_ROUTE_OPENAI, "/v1/chat/completions",
         "{\"model\":\"m\",\"n\":99999,\"max_tokens\":9223372036854775807}", "m",
         INT64_MAX}, /* capped at 1024 answers, saturated */
        {TG_ROUTE_OPENAI, "/v1/embeddings", "{\"model\":\"e\",\"n\":5}", "e", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_xchg_begin(x, cases[i].kind, cases[i].path, strlen(cases[i].path));
        tg_xchg_request(x, cases[i].body, strlen(cases[i].body), &out, &outlen);
        assert_null(out);
        assert_string_equal(tg_xchg_model(x), cases[i].model);
        assert_int_equal(tg_xchg_max_output(x), cases[i].max_out);
        assert_int_equal(tg_xchg_ntools(x), 0);
    }
    /* A request that names no maximum: the caller's default applies to each answer. */
    static const char n3[] = "{\"model\":\"m\",\"n\":3}";
    tg_xchg_begin(x, TG_ROUTE_OPENAI, "/v1/chat/completions", 20);
    tg_xchg_request(x, n3, sizeof n3 - 1, &out, &outlen);
    assert_int_equal(tg_xchg_max_output(x), -1);
    assert_int_equal(tg_xchg_choices(x), 3);
    tg_xchg_begin(x, TG_ROUTE_OPENAI, "/v1/chat/completions", 20);
    tg_xchg_request(x, "{}", 2, &out, &outlen);
    assert_int_equal(tg_xchg_choices(x), 1);
    tg_xchg_free(x);
    tg_xchg_free(NULL);
}

/* Endpoints whose spending tollgate cannot meter (exchange.h tg_xchg_offside). */
static void test_offside(void **state)
{
    (void)state;
#define OFF(kind, path, body) tg_xchg_offside(kind, path, strlen(path), body)
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/realtime/client_secrets", 0));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/realtime/sessions", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/realtime/transcription_sessions//", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/batches", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, "/v1/batches", 0)); /* listing batches */
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/fine_tuning/jobs/", 1));
    assert_true(OFF(TG_ROUTE_ANTHROPIC, "/v1/messages/batches", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/realtime/calls", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/videos", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/evals/eval_1/runs", 1));
    assert_false(OFF(TG_ROUTE_ANTHROPIC, "/v1/messages", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, "/v1/chat/completions", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, "/v1/batches/batch_1/cancel", 1));
    assert_false(OFF(TG_ROUTE_MCP, "/v1/batches", 1));
    assert_false(OFF(TG_ROUTE_HTTP, "/v1/realtime/sessions", 1));
    /* What a lenient upstream reads as the same endpoint: path parameters (also encoded),
     * trailing dots, in any mix with trailing slashes. */
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runs.", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runs...", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runs%3B", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runs%3bx=1", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runs;jsessionid=1", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runs/;x/", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/batches./", 1));
    assert_true(OFF(TG_ROUTE_OPENAI, "/v1/realtime/client_secrets;a", 0));
    assert_true(OFF(TG_ROUTE_ANTHROPIC, "/v1/messages/batches%3B.", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runs.", 0)); /* listing */
    assert_false(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runsx", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runs%3", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, "/v1/threads/t_1/runs%3C", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, "/v1/chat/completions;a", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, ";", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, "/;", 1));
    assert_false(OFF(TG_ROUTE_OPENAI, "...", 1));
#undef OFF
}

/* A body that is not JSON is forwarded as it is, and the response alone decides. */
static void test_request_not_json_response_decides(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S("model=gpt-4o&stream=true")};
    struct result r;

    static const char with[] = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":"
                               "\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":"
                               "3,\"completion_tokens\":4,\"total_tokens\":7}}";
    struct resp rs = {200, "application/json", S(with)};
    run(x, &rq, &rs, 0, NULL, 0, with, sizeof with - 1, &r);
    assert_int_equal(r.req_rewritten, 0);
    assert_int_equal(r.unparsed, 0);
    assert_int_equal(r.ev.tokens_in, 3);
    assert_int_equal(r.ev.tokens_out, 4);
    assert_int_equal(r.ev.tokens_cached, 0);
    assert_string_equal(r.ev.model, "gpt-4o-2024-08-06"); /* the request named none */
    result_free(&r);

    static const char without[] = "{\"error\":null,\"choices\":[]}";
    rs = (struct resp){200, "application/json", S(without)};
    run(x, &rq, &rs, 0, NULL, 0, without, sizeof without - 1, &r);
    assert_int_equal(r.unparsed, 1);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_int_equal(r.ev.tokens_out, TG_TOKENS_UNKNOWN);
    assert_string_equal(r.ev.model, "");
    result_free(&r);

    /* The stream the upstream sends to a request it could read (without usage). */
    rs = (struct resp){200, "text/event-stream", S(chat_plain)};
    run(x, &rq, &rs, 0, NULL, 0, chat_plain, sizeof chat_plain - 1, &r);
    assert_int_equal(r.rewrites, 0);
    assert_int_equal(r.unparsed, 1);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_string_equal(r.ev.model, "gpt-4o-mini-2024-07-18");
    result_free(&r);

    /* Refused: not observed, nothing is unparsed. */
    static const char bad[] = "{\"error\":{\"message\":\"We could not parse the JSON body\","
                              "\"type\":\"invalid_request_error\"}}";
    rs = (struct resp){400, "application/json", S(bad)};
    run(x, &rq, &rs, 0, NULL, 0, bad, sizeof bad - 1, &r);
    assert_int_equal(r.unparsed, 0);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    result_free(&r);
    tg_xchg_free(x);
}

/* ---- 2. the rewritten stream ------------------------------------------------------ */

static void rewritten_stream(const char *req, size_t rlen, const char *path, const char *with_lf,
                             const char *plain_lf, int64_t in, int64_t out, int64_t cached,
                             const char *model)
{
    tg_xchg_t *x = tg_xchg_new();
    for (size_t e = 0; e < sizeof eols / sizeof eols[0]; e++) {
        size_t wlen, plen;
        char *with = with_eol(with_lf, eols[e], &wlen);
        char *plain = with_eol(plain_lf, eols[e], &plen);
        struct req rq = {TG_ROUTE_OPENAI, path, req, rlen};
        struct resp rs = {200, "text/event-stream", with, wlen};
        struct result ref;
        print_message("line ends %s: %zu bytes in, %zu out\n", eol_names[e], wlen, plen);
        all_splits(x, &rq, &rs, plain, plen, 1, &ref);
        assert_int_equal(ref.req_rewritten, 1);
        assert_int_equal(ref.rewrites, 1);
        assert_int_equal(ref.unparsed, 0);
        assert_int_equal(ref.ev.tokens_in, in);
        assert_int_equal(ref.ev.tokens_out, out);
        assert_int_equal(ref.ev.tokens_cached, cached);
        assert_int_equal(ref.ev.tokens_cache_write, 0);
        assert_string_equal(ref.ev.model, model);
        assert_string_equal(ref.ev.reason, "");
        result_free(&ref);
        free(with);
        free(plain);
    }
    tg_xchg_free(x);
}

static void test_rewrite_chat_stream(void **state)
{
    (void)state;
    rewritten_stream(S(CHAT_REQ), "/v1/chat/completions", chat_with_usage, chat_plain, 19, 10, 6,
                     "gpt-4o-mini-2024-07-18"); /* the model the upstream reports */
}

static void test_rewrite_completions_stream(void **state)
{
    (void)state;
    rewritten_stream(
        S("{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":\"Tell\",\"stream\":true}"),
        "/v1/completions", cmpl_with_usage, cmpl_plain, 5, 2, 0, "gpt-3.5-turbo-instruct");
}

/* Comments, ids and a stream cut short pass as they came; only the usage is taken out. */
static void test_rewrite_keeps_other_bytes(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ)};
    static const char in[] = ": OPENAI PROCESSING\n\n"
                             "id: 1\ndata: " C_ROLE ",\"usage\":null}\n\n"
                             "data: " C_HELLO ",\n"
                             "data: \"usage\":null}\n\n"
                             "data: " C_USAGE "\n\n"
                             "data: " C_STOP ",\"usage\":null}\n\n"
                             "data: {\"id\":\"chatcmpl-AX9k";
    static const char want[] = ": OPENAI PROCESSING\n\n"
                               "id: 1\ndata: " C_ROLE "}\n\n"
                               /* across two data lines the member is not one run of text:
                                  the event passes as it came */
                               "data: " C_HELLO ",\n"
                               "data: \"usage\":null}\n\n"
                               "data: " C_STOP "}\n\n"
                               "data: {\"id\":\"chatcmpl-AX9k";
    struct resp rs = {200, "text/event-stream", S(in)};
    struct result ref;
    all_splits(x, &rq, &rs, want, sizeof want - 1, 0, &ref);
    assert_int_equal(ref.ev.tokens_in, 19);
    assert_int_equal(ref.ev.tokens_out, 10);
    assert_int_equal(ref.unparsed, 0);
    result_free(&ref);

    /* A stream that ends before its usage chunk: forwarded, tokens unknown. */
    static const char cut[] =
        "data: " C_ROLE ",\"usage\":null}\n\ndata: " C_STOP ",\"usage\":null}\n\n";
    static const char cut_want[] = "data: " C_ROLE "}\n\ndata: " C_STOP "}\n\n";
    rs = (struct resp){200, "text/event-stream", S(cut)};
    all_splits(x, &rq, &rs, cut_want, sizeof cut_want - 1, 0, &ref);
    assert_int_equal(ref.ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_int_equal(ref.ev.tokens_out, TG_TOKENS_UNKNOWN);
    assert_int_equal(ref.unparsed, 1);
    assert_string_equal(ref.ev.model, "gpt-4o-mini");
    result_free(&ref);
    tg_xchg_free(x);
}

/* While rewriting, a keep-alive comment is sent as soon as its block ends (not held until
 * the next event), and one just before the usage chunk is not dropped with it. */
static void test_rewrite_keepalive_not_held(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ)};
    static const char in[] = "data: " C_ROLE ",\"usage\":null}\n\n"
                             ": keep-alive\n\n"
                             "data: " C_USAGE "\n\n"
                             "data: [DONE]\n\n";
    static const char want[] = "data: " C_ROLE "}\n\n"
                               ": keep-alive\n\n"
                               "data: [DONE]\n\n";
    struct resp rs = {200, "text/event-stream", S(in)};
    struct result ref;
    all_splits(x, &rq, &rs, want, sizeof want - 1, 0, &ref);
    assert_int_equal(ref.ev.tokens_in, 19);
    result_free(&ref);

    /* Fed up to the end of the comment block: it is out before anything else arrives. */
    const char *body;
    size_t blen;
    tg_xchg_begin(x, TG_ROUTE_OPENAI, S("/v1/chat/completions"));
    tg_xchg_request(x, CHAT_REQ, sizeof CHAT_REQ - 1, &body, &blen);
    tg_xchg_response_head(x, 200, "text/event-stream", 17);
    struct out out = {0};
    static const char ka[] = ": keep-alive\n\n";
    assert_int_equal(tg_xchg_response_body(x, ka, sizeof ka - 1, collect, &out), 0);
    assert_int_equal(out.len, sizeof ka - 1);
    assert_memory_equal(out.p, ka, sizeof ka - 1);
    tg_event_t ev;
    event_init(&ev);
    int unparsed;
    tg_xchg_finish(x, &ev, &unparsed);
    free(out.p);
    tg_xchg_free(x);
}

/* The request was rewritten but the answer is not a stream: nothing is rewritten. */
static void test_rewrite_only_streams(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ)};
    static const char err[] = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":"
                              "\"requests\",\"usage\":null}}";
    struct resp rs = {429, "application/json", S(err)};
    struct result r;
    run(x, &rq, &rs, 0, NULL, 0, err, sizeof err - 1, &r);
    assert_int_equal(r.req_rewritten, 1);
    assert_int_equal(r.rewrites, 0);
    assert_int_equal(r.unparsed, 0);
    result_free(&r);
    /* A 500 that is an event stream all the same is forwarded untouched. */
    rs = (struct resp){500, "text/event-stream", S(chat_with_usage)};
    run(x, &rq, &rs, 7, NULL, 0, chat_with_usage, sizeof chat_with_usage - 1, &r);
    assert_int_equal(r.rewrites, 0);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_int_equal(r.unparsed, 0);
    result_free(&r);
    tg_xchg_free(x);
}

/* Once emit fails, nothing more is sent and every call says so. */
static void test_emit_failure(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    for (int rewritten = 0; rewritten < 2; rewritten++) {
        struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ)};
        struct req rq_own = {TG_ROUTE_OPENAI, "/v1/chat/completions",
                             S("{\"model\":\"gpt-4o-mini\",\"stream\":true,"
                               "\"stream_options\":{\"include_usage\":true}}")};
        const char *o;
        size_t ol;
        request(x, rewritten ? &rq : &rq_own, &o, &ol);
        tg_xchg_response_head(x, 200, S("text/event-stream"));
        assert_int_equal(tg_xchg_rewrites(x), rewritten);
        struct out out = {0};
        size_t n = sizeof chat_with_usage - 1, third = n / 3;
        assert_int_equal(tg_xchg_response_body(x, chat_with_usage, third, collect, &out), 0);
        assert_true(out.calls >= 1);
        out.fail_at = out.calls + 1; /* the client goes away */
        assert_int_equal(tg_xchg_response_body(x, chat_with_usage + third, third, collect, &out),
                         -1);
        int calls = out.calls;
        assert_int_equal(
            tg_xchg_response_body(x, chat_with_usage + 2 * third, n - 2 * third, collect, &out),
            -1);
        assert_int_equal(tg_xchg_response_end(x, collect, &out), -1);
        assert_int_equal(out.calls, calls);
        tg_event_t ev;
        int unparsed;
        event_init(&ev);
        tg_xchg_finish(x, &ev, &unparsed);
        free(out.p);
    }
    tg_xchg_free(x);
}

/* ---- 3. streams passed untouched -------------------------------------------------- */

static void test_passthrough_streams(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    for (size_t e = 0; e < 2; e++) {
        size_t n;
        struct result ref;

        /* The client asked for the usage: it gets it, byte for byte. */
        char *in = with_eol(chat_with_usage, eols[e], &n);
        struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions",
                         S("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{"
                           "\"include_usage\":true},\"messages\":[]}")};
        struct resp rs = {200, "text/event-stream", in, n};
        all_splits(x, &rq, &rs, in, n, 0, &ref);
        assert_int_equal(ref.req_rewritten, 0);
        assert_int_equal(ref.rewrites, 0);
        assert_int_equal(ref.ev.tokens_in, 19);
        assert_int_equal(ref.ev.tokens_out, 10);
        assert_int_equal(ref.ev.tokens_cached, 6);
        assert_int_equal(ref.ev.tokens_cache_write, 0);
        assert_string_equal(ref.ev.model, "gpt-4o-mini-2024-07-18"); /* the upstream's */
        assert_int_equal(ref.unparsed, 0);
        result_free(&ref);
        free(in);

        /* Responses API: usage in response.completed. */
        in = with_eol(responses_stream, eols[e], &n);
        rq = (struct req){TG_ROUTE_OPENAI, "/v1/responses",
                          S("{\"input\":\"Say hi\",\"stream\":true}")};
        rs = (struct resp){200, "text/event-stream", in, n};
        all_splits(x, &rq, &rs, in, n, 0, &ref);
        assert_int_equal(ref.req_rewritten, 0);
        assert_int_equal(ref.rewrites, 0);
        assert_int_equal(ref.ev.tokens_in, 37);
        assert_int_equal(ref.ev.tokens_out, 11);
        assert_int_equal(ref.ev.tokens_cached, 5);
        assert_string_equal(ref.ev.model, "gpt-4.1-mini-2025-04-14"); /* request named none */
        assert_int_equal(ref.unparsed, 0);
        result_free(&ref);
        free(in);

        /* Anthropic: message_start's output count is provisional, message_delta's final. */
        in = with_eol(anthropic_stream, eols[e], &n);
        rq = (struct req){TG_ROUTE_ANTHROPIC, "/v1/messages",
                          S("{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":256,"
                            "\"stream\":true,\"messages\":[]}")};
        rs = (struct resp){200, "text/event-stream", in, n};
        all_splits(x, &rq, &rs, in, n, 0, &ref);
        assert_int_equal(ref.req_rewritten, 0);
        assert_int_equal(ref.rewrites, 0);
        assert_int_equal(ref.ev.tokens_in, 25);
        assert_int_equal(ref.ev.tokens_out, 15);
        assert_int_equal(ref.ev.tokens_cached, 300);
        assert_int_equal(ref.ev.tokens_cache_write, 40);
        assert_string_equal(ref.ev.model, "claude-3-5-haiku-20241022"); /* the upstream's */
        assert_int_equal(ref.unparsed, 0);
        result_free(&ref);
        free(in);
    }
    tg_xchg_free(x);
}

/* ---- 4. JSON responses -------------------------------------------------------------- */

struct json_case {
    tg_route_kind_t kind;
    const char *path, *req, *body, *model;
    int64_t in, out, cached, cache_write;
};

static void test_json_responses(void **state)
{
    (void)state;
    static const struct json_case cases[] = {
        {TG_ROUTE_OPENAI, "/v1/chat/completions", "{\"model\":\"gpt-4o\",\"messages\":[]}",
         "{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion\","
         "\"created\":1741569952,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,"
         "\"message\":{\"role\":\"assistant\",\"content\":\"Hello!\",\"refusal\":null},"
         "\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1117,"
         "\"completion_tokens\":46,\"total_tokens\":1163,\"prompt_tokens_details\":{"
         "\"cached_tokens\":1024,\"audio_tokens\":0},\"completion_tokens_details\":{"
         "\"reasoning_tokens\":0}},\"service_tier\":\"default\"}\n",
         "gpt-4o-2024-08-06", 1117, 46, 1024, 0},
        {TG_ROUTE_OPENAI, "/v1/embeddings", "{\"input\":\"The food was delicious\"}",
         "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":"
         "[-0.006929283,-0.005336422,0.00024047505]}],\"model\":\"text-embedding-3-small\","
         "\"usage\":{\"prompt_tokens\":5,\"total_tokens\":5}}",
         "text-embedding-3-small", 5, 0, 0, 0},
        {TG_ROUTE_OPENAI, "/v1/responses", "{\"model\":\"gpt-4.1\",\"input\":\"hi\"}",
         "{\"id\":\"resp_67ccd2bed1ec8190\",\"object\":\"response\",\"created_at\":1741476542,"
         "\"status\":\"completed\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[{\"type\":"
         "\"message\",\"id\":\"msg_67ccd2bf\",\"status\":\"completed\",\"role\":\"assistant\","
         "\"content\":[{\"type\":\"output_text\",\"text\":\"Hi\",\"annotations\":[]}]}],"
         "\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":12},"
         "\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":0},"
         "\"total_tokens\":123}}",
         "gpt-4.1-2025-04-14", 36, 87, 12, 0},
        {TG_ROUTE_ANTHROPIC, "/v1/messages",
         "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":1024,\"messages\":[]}",
         "{\"id\":\"msg_013Zva2CMHLNnXjNJJKqJ2EF\",\"type\":\"message\",\"role\":\"assistant\","
         "\"model\":\"claude-sonnet-4-20250514\",\"content\":[{\"type\":\"text\",\"text\":"
         "\"Hi!\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{"
         "\"input_tokens\":21,\"cache_creation_input_tokens\":1500,"
         "\"cache_read_input_tokens\":3000,\"output_tokens\":42,\"service_tier\":\"standard\"}}",
         "claude-sonnet-4-20250514", 21, 42, 3000, 1500},
    };
    tg_xchg_t *x = tg_xchg_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct json_case *c = &cases[i];
        struct req rq = {c->kind, c->path, c->req, strlen(c->req)};
        struct resp rs = {200, "application/json", c->body, strlen(c->body)};
        struct result ref;
        all_splits(x, &rq, &rs, c->body, strlen(c->body), 0, &ref);
        assert_int_equal(ref.rewrites, 0);
        assert_int_equal(ref.unparsed, 0);
        assert_string_equal(ref.ev.model, c->model);
        assert_int_equal(ref.ev.tokens_in, c->in);
        assert_int_equal(ref.ev.tokens_out, c->out);
        assert_int_equal(ref.ev.tokens_cached, c->cached);
        assert_int_equal(ref.ev.tokens_cache_write, c->cache_write);
        assert_string_equal(ref.ev.reason, "");
        result_free(&ref);
    }
    tg_xchg_free(x);
}

static void test_json_unreadable(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o\",\"usage\":{\"prompt_tokens\":1", /* cut */
        "<html><body>502 Bad Gateway</body></html>",
        "[{\"usage\":{\"prompt_tokens\":1}}]",
        "{\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o\",\"usage\":null}",
        "",
    };
    tg_xchg_t *x = tg_xchg_new();
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S("{\"model\":\"gpt-4o\"}")};
        struct resp rs = {200, "application/json", bodies[i], strlen(bodies[i])};
        struct result r;
        run(x, &rq, &rs, 0, NULL, 0, bodies[i], strlen(bodies[i]), &r);
        assert_int_equal(r.o.len, strlen(bodies[i]));
        assert_int_equal(r.unparsed, 1);
        assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
        assert_int_equal(r.ev.tokens_out, TG_TOKENS_UNKNOWN);
        assert_int_equal(r.ev.tokens_cached, TG_TOKENS_UNKNOWN);
        assert_int_equal(r.ev.tokens_cache_write, TG_TOKENS_UNKNOWN);
        assert_string_equal(r.ev.model, "gpt-4o");
        result_free(&r);
    }
    tg_xchg_free(x);
}

/* Not 2xx, or not a metered path: forwarded, not read, not counted as unparsed. */
static void test_json_not_observed(void **state)
{
    (void)state;
    static const char usage_body[] = "{\"model\":\"gpt-4o\",\"usage\":{\"prompt_tokens\":5,"
                                     "\"completion_tokens\":6}}";
    static const struct {
        tg_route_kind_t kind;
        const char *path;
        int status;
        const char *model;
    } cases[] = {
        {TG_ROUTE_OPENAI, "/v1/chat/completions", 400, "gpt-4o-mini"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", 500, "gpt-4o-mini"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", 304, "gpt-4o-mini"},
        {TG_ROUTE_OPENAI, "/v1/chat/completions", 199, "gpt-4o-mini"},
        {TG_ROUTE_ANTHROPIC, "/v1/messages", 529, "gpt-4o-mini"},
        /* Endpoints recognised as free (an unknown one with a body is metered). */
        {TG_ROUTE_OPENAI, "/v1/moderations", 200, ""},
        {TG_ROUTE_ANTHROPIC, "/v1/messages/count_tokens", 200, ""},
        {TG_ROUTE_HTTP, "/v1/chat/completions", 200, ""},
    };
    tg_xchg_t *x = tg_xchg_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct req rq = {cases[i].kind, cases[i].path, S("{\"model\":\"gpt-4o-mini\"}")};
        for (int sse = 0; sse < 2; sse++) {
            struct resp rs = {cases[i].status, sse ? "text/event-stream" : "application/json",
                              S(usage_body)};
            if (sse) rs = (struct resp){rs.status, rs.ctype, S(chat_with_usage)};
            struct result r;
            run(x, &rq, &rs, 5, NULL, 0, rs.body, rs.len, &r);
            assert_int_equal(r.o.len, rs.len);
            assert_int_equal(r.rewrites, 0);
            assert_int_equal(r.unparsed, 0);
            assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
            assert_int_equal(r.ev.tokens_out, TG_TOKENS_UNKNOWN);
            assert_int_equal(r.ev.tokens_cached, TG_TOKENS_UNKNOWN);
            assert_string_equal(r.ev.model, cases[i].model);
            assert_string_equal(r.ev.reason, "");
            result_free(&r);
        }
    }
    /* GET /v1/models: no body, nothing. */
    tg_event_t ev;
    int unparsed = 7;
    event_init(&ev);
    tg_xchg_begin(x, TG_ROUTE_OPENAI, S("/v1/models"));
    tg_xchg_response_head(x, 200, S("application/json"));
    struct out o = {0};
    static const char list[] = "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o\"}]}";
    assert_int_equal(tg_xchg_response_body(x, S(list), collect, &o), 0);
    assert_int_equal(tg_xchg_response_end(x, collect, &o), 0);
    tg_xchg_finish(x, &ev, &unparsed);
    assert_int_equal(unparsed, 0);
    assert_int_equal(o.len, sizeof list - 1);
    tg_event_t blank;
    event_init(&blank);
    assert_memory_equal(&ev, &blank, sizeof ev);
    free(o.p);
    tg_xchg_free(x);
}

/* An embeddings answer of total bytes at least min: a long data array, then model and
 * (when usage) usage, as OpenAI orders them. */
static char *big_embeddings(size_t min, int usage, size_t *len)
{
    struct sb b = {0};
    sb_str(&b, "{\"object\":\"list\",\"data\":[");
    char item[256];
    for (size_t i = 0; b.len < min; i++) {
        int n = snprintf(item, sizeof item,
                         "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":[0.0023064255,"
                         "-0.009327292,0.015797347,-0.0077780345,0.0064225784]}",
                         i ? "," : "", i);
        sb_put(&b, item, (size_t)n);
    }
    sb_str(&b, "],\"model\":\"text-embedding-3-large\"");
    if (usage) sb_str(&b, ",\"usage\":{\"prompt_tokens\":5120,\"total_tokens\":5120}");
    sb_str(&b, "}");
    *len = b.len;
    return b.p;
}

static void test_json_huge_body(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    struct req rq = {TG_ROUTE_OPENAI, "/v1/embeddings", S("{\"input\":[\"a\",\"b\"]}")};
    static const size_t steps[] = {0, 1000, 4096, 16384, 65535, 65536, 65537, 100003, 1u << 20};
    size_t n;
    char *body = big_embeddings(3u << 20, 1, &n);
    assert_true(n > (3u << 20));
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct resp rs = {200, "application/json", body, n};
        struct result r;
        run(x, &rq, &rs, steps[i], NULL, 0, body, n, &r);
        assert_int_equal(r.o.len, n);
        assert_int_equal(r.unparsed, 0);
        assert_int_equal(r.ev.tokens_in, 5120);
        assert_int_equal(r.ev.tokens_out, 0);
        assert_int_equal(r.ev.tokens_cached, 0);
        assert_string_equal(r.ev.model, "text-embedding-3-large");
        result_free(&r);
    }
    /* Cut 64 KiB before the end and inside the usage object. */
    for (size_t back = 1; back < 120; back += 3) {
        size_t cuts[2] = {n - 65536 - back, n - back};
        struct resp rs = {200, "application/json", body, n};
        struct result r;
        run(x, &rq, &rs, 0, cuts, 2, body, n, &r);
        assert_int_equal(r.ev.tokens_in, 5120);
        assert_string_equal(r.ev.model, "text-embedding-3-large");
        result_free(&r);
    }
    free(body);

    /* The same without usage: unknown, and counted as unparsed. */
    body = big_embeddings(3u << 19, 0, &n);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct resp rs = {200, "application/json", body, n};
        struct result r;
        run(x, &rq, &rs, steps[i], NULL, 0, body, n, &r);
        assert_int_equal(r.unparsed, 1);
        assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
        assert_int_equal(r.ev.tokens_out, TG_TOKENS_UNKNOWN);
        assert_string_equal(r.ev.model, "text-embedding-3-large");
        result_free(&r);
    }
    free(body);
    tg_xchg_free(x);
}

/* Answers of any size are read as they pass; what is capped is one token still in
 * progress: a string longer than the cap arriving in pieces makes the answer unreadable
 * (forwarded all the same), one just under it does not. The cap is set small here
 * (tg_xchg_set_token_max); tg_xchg_set_max_body gives at least TG_JPICK_TOKEN_MAX and 3 x
 * max_body + 4 MiB. */
static void test_json_token_cap(void **state)
{
    (void)state;
    static const char head[] = "{\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7},\"model\":"
                               "\"text-embedding-3-small\",\"object\":\"list\",\"pad\":\"";
    tg_xchg_t *x = tg_xchg_new();
    struct req rq = {TG_ROUTE_OPENAI, "/v1/embeddings", S("{\"input\":\"x\"}")};
    size_t cap = 1u << 20;
    static const size_t pads[] = {(1u << 20) - 65536, (1u << 20) + 65536 * 2};
    for (size_t k = 0; k < 2; k++) {
        for (size_t raise = 0; raise < 2; raise++) {
            if (raise)
                tg_xchg_set_max_body(x, 1u << 20);
            else
                tg_xchg_set_token_max(x, cap);
            size_t total = sizeof head - 1 + pads[k] + 2;
            char *body = malloc(total);
            assert_non_null(body);
            memcpy(body, head, sizeof head - 1);
            memset(body + sizeof head - 1, 'x', pads[k]);
            memcpy(body + total - 2, "\"}", 2);
            struct resp rs = {200, "application/json", body, total};
            struct result r;
            run(x, &rq, &rs, 16384, NULL, 0, body, total, &r);
            assert_int_equal(r.o.len, total);
            assert_memory_equal(r.o.p, body, total);
            int over = k && !raise;
            assert_int_equal(r.unparsed, over);
            assert_int_equal(r.ev.tokens_in, over ? TG_TOKENS_UNKNOWN : 7);
            result_free(&r);
            free(body);
        }
    }
    tg_xchg_free(x);
}

/* A Responses API answer echoes the client's metadata after its usage: however large the
 * answer, only the top-level usage counts. */
static void test_json_nested_usage_ignored(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    struct req rq = {TG_ROUTE_OPENAI, "/v1/responses",
                     S("{\"model\":\"gpt-4.1\",\"input\":\"hi\"}")};
    static const char head[] = "{\"object\":\"response\",\"model\":\"gpt-4.1\",\"usage\":{"
                               "\"input_tokens\":20,\"output_tokens\":11},\"output\":[";
    static const char tail[] = "],\"metadata\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":"
                               "1}},\"x\":[{\"usage\":{\"input_tokens\":2}}]}";
    static const size_t fill[] = {0, 3u << 20};
    for (size_t k = 0; k < 2; k++) {
        size_t total = sizeof head - 1 + fill[k] * 2 + sizeof tail - 1;
        char *body = malloc(total);
        assert_non_null(body);
        char *w = body;
        memcpy(w, head, sizeof head - 1);
        w += sizeof head - 1;
        for (size_t i = 0; i < fill[k]; i++) { /* "11,1,1,...": many small tokens */
            *w++ = i ? ',' : '1';
            *w++ = '1';
        }
        memcpy(w, tail, sizeof tail - 1);
        w += sizeof tail - 1;
        assert_int_equal((size_t)(w - body), total);
        for (size_t step = 0; step <= 65536; step += 65536) {
            struct resp rs = {200, "application/json", body, total};
            struct result r;
            run(x, &rq, &rs, step, NULL, 0, body, total, &r);
            assert_int_equal(r.unparsed, 0);
            assert_int_equal(r.ev.tokens_in, 20);
            assert_int_equal(r.ev.tokens_out, 11);
            result_free(&r);
        }
        free(body);
    }
    tg_xchg_free(x);
}

/* ---- 5. MCP ---------------------------------------------------------------------------- */

#define MCP_CALL                                                                                   \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"                \
    "\"get_weather\",\"arguments\":{\"location\":\"Paris\"}}}"

static void mcp_expect(tg_xchg_t *x, const char *req, size_t rlen, int status, const char *ctype,
                       const char *body, size_t blen, const char *reason, int unparsed)
{
    struct req rq = {TG_ROUTE_MCP, "/mcp", req, rlen};
    struct resp rs = {status, ctype, body, blen};
    struct result r;
    run(x, &rq, &rs, 0, NULL, 0, body, blen, &r);
    assert_int_equal(r.req_rewritten, 0);
    assert_int_equal(r.rewrites, 0);
    assert_int_equal(r.o.len, blen);
    assert_string_equal(r.ev.reason, reason);
    assert_int_equal(r.unparsed, unparsed);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_int_equal(r.ev.tokens_out, TG_TOKENS_UNKNOWN);
    assert_string_equal(r.ev.model, "");
    result_free(&r);
}

static void test_mcp_single(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    const char *out;
    size_t outlen;
    tg_xchg_begin(x, TG_ROUTE_MCP, S("/mcp"));
    tg_xchg_request(x, S(MCP_CALL), &out, &outlen);
    assert_null(out);
    assert_int_equal(tg_xchg_ntools(x), 1);
    assert_string_equal(tg_xchg_tool(x, 0), "get_weather");
    assert_null(tg_xchg_tool(x, 1));
    assert_string_equal(tg_xchg_model(x), "");
    tg_xchg_response_head(x, 200, S("application/json"));
    static const char ok[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":"
                             "\"text\",\"text\":\"18C, sunny\"}],\"isError\":false}}";
    struct out o = {0};
    assert_int_equal(tg_xchg_response_body(x, S(ok), collect, &o), 0);
    assert_int_equal(tg_xchg_response_end(x, collect, &o), 0);
    tg_event_t ev;
    int unparsed = 7;
    event_init(&ev);
    tg_xchg_finish(x, &ev, &unparsed);
    assert_int_equal(unparsed, 0);
    assert_string_equal(ev.rpc_method, "tools/call");
    assert_string_equal(ev.tool, "get_weather");
    assert_string_equal(ev.reason, "");
    assert_int_equal(o.len, sizeof ok - 1);
    assert_memory_equal(o.p, ok, o.len);
    free(o.p);

    mcp_expect(x, S(MCP_CALL), 200, "application/json", S(ok), "", 0);
    mcp_expect(x, S(MCP_CALL), 200, "application/json",
               S("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\","
                 "\"text\":\"API rate limit exceeded\"}],\"isError\":true}}"),
               "tool_error", 0);
    mcp_expect(x, S(MCP_CALL), 200, "application/json",
               S("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32602,\"message\":"
                 "\"Unknown tool: invalid_tool_name\"}}"),
               "rpc_error", 0);
    /* An answer to another id, or the same number as a string, is not this answer. */
    mcp_expect(x, S(MCP_CALL), 200, "application/json",
               S("{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"content\":[]}}"), "no_result", 0);
    mcp_expect(x, S(MCP_CALL), 200, "application/json",
               S("{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"result\":{\"content\":[]}}"), "no_result", 0);
    /* Unreadable: no result, and counted as unparsed. */
    mcp_expect(x, S(MCP_CALL), 200, "application/json", S("{\"jsonrpc\":\"2.0\",\"id\":1,"),
               "no_result", 1);
    /* Not 2xx: not read. */
    mcp_expect(x, S(MCP_CALL), 401, "application/json",
               S("{\"error\":\"invalid_token\",\"error_description\":\"expired\"}"), "", 0);
    /* Another method: rpc_method set, no tool. */
    tg_xchg_begin(x, TG_ROUTE_MCP, S("/mcp"));
    tg_xchg_request(x, S("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"tools/list\"}"), &out,
                    &outlen);
    assert_int_equal(tg_xchg_ntools(x), 0);
    tg_xchg_response_head(x, 200, S("application/json"));
    o = (struct out){0};
    assert_int_equal(
        tg_xchg_response_body(x, S("{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"tools\":[]}}"),
                              collect, &o),
        0);
    event_init(&ev);
    tg_xchg_finish(x, &ev, &unparsed);
    assert_string_equal(ev.rpc_method, "tools/list");
    assert_string_equal(ev.tool, "");
    assert_string_equal(ev.reason, "");
    assert_int_equal(unparsed, 0);
    free(o.p);
    tg_xchg_free(x);
}

static void test_mcp_sse(void **state)
{
    (void)state;
    /* A progress notification and a server-to-client request that happens to use the same
     * id come before the answer; none of them is the answer. */
    static const char sse[] =
        "event: message\n"
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{"
        "\"progressToken\":\"abc\",\"progress\":50,\"total\":100}}\n"
        "\n"
        "id: 2\n"
        "event: message\n"
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"roots/list\"}\n"
        "\n"
        "id: 3\n"
        "event: message\n"
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\","
        "\"text\":\"18C\"}],\"isError\":false}}\n"
        "\n";
    static const char *const reasons[] = {"", "tool_error", "no_result"};
    tg_xchg_t *x = tg_xchg_new();
    for (size_t e = 0; e < 2; e++) {
        for (size_t v = 0; v < 3; v++) {
            size_t n;
            char *in = with_eol(sse, eols[e], &n);
            if (v == 1) memcpy(strstr(in, "\"isError\":false"), "\"isError\":true ", 15);
            if (v == 2) strstr(in, "\"id\":1,\"result\"")[5] = '9';
            struct req rq = {TG_ROUTE_MCP, "/mcp", S(MCP_CALL)};
            struct resp rs = {200, "text/event-stream", in, n};
            struct result ref;
            all_splits(x, &rq, &rs, in, n, 0, &ref);
            assert_int_equal(ref.rewrites, 0);
            assert_string_equal(ref.ev.reason, reasons[v]);
            assert_string_equal(ref.ev.tool, "get_weather");
            assert_string_equal(ref.ev.rpc_method, "tools/call");
            assert_int_equal(ref.unparsed, 0);
            result_free(&ref);
            free(in);
        }
    }
    /* A stream that ends before the answer, with an event that is not JSON. */
    static const char broken[] = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\n\n";
    mcp_expect(x, S(MCP_CALL), 200, "text/event-stream", S(broken), "no_result", 1);
    tg_xchg_free(x);
}

#define MCP_BATCH                                                                                  \
    "[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"               \
    "\"search\",\"arguments\":{\"q\":\"tollgate\"}}},"                                             \
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":"       \
    "3}},"                                                                                         \
    "{\"jsonrpc\":\"2.0\",\"id\":\"req-b\",\"method\":\"tools/call\",\"params\":{\"name\":"        \
    "\"fetch\",\"arguments\":{\"url\":\"https://example.com\"}}}]"

static void test_mcp_batch(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    const char *out;
    size_t outlen;
    tg_xchg_begin(x, TG_ROUTE_MCP, S("/mcp"));
    tg_xchg_request(x, S(MCP_BATCH), &out, &outlen);
    assert_null(out);
    assert_int_equal(tg_xchg_ntools(x), 2);
    assert_string_equal(tg_xchg_tool(x, 0), "search");
    assert_string_equal(tg_xchg_tool(x, 1), "fetch");
    /* Two requests (the notification has no id): two errors, with their ids. */
    char buf[512];
    static const char want[] =
        "[{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32001,\"message\":\"budget "
        "exceeded\"}},{\"jsonrpc\":\"2.0\",\"id\":\"req-b\",\"error\":{\"code\":-32001,"
        "\"message\":\"budget exceeded\"}}]";
    assert_int_equal(tg_xchg_mcp_error(x, "budget exceeded", buf, sizeof buf), sizeof want - 1);
    assert_string_equal(buf, want);

    static const struct {
        const char *body, *reason;
    } cases[] = {
        /* Answered in another order: all answered. */
        {"[{\"jsonrpc\":\"2.0\",\"id\":\"req-b\",\"result\":{\"content\":[]}},"
         "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[],\"isError\":false}}]",
         ""},
        /* One answered, one not: billed for the one (partial, OK of requests). */
        {"[{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[]}}]", "partial:1/2"},
        /* The same answer twice does not answer the other. */
        {"[{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}},{\"jsonrpc\":\"2.0\",\"id\":7,"
         "\"result\":{}}]",
         "partial:1/2"},
        {"[{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[],\"isError\":true}},"
         "{\"jsonrpc\":\"2.0\",\"id\":\"req-b\",\"result\":{\"content\":[]}}]",
         "partial:1/2"},
        /* An error outranks a tool error. */
        {"[{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[],\"isError\":true}},"
         "{\"jsonrpc\":\"2.0\",\"id\":\"req-b\",\"error\":{\"code\":-32603,\"message\":"
         "\"Internal error\"}}]",
         "rpc_error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct req rq = {TG_ROUTE_MCP, "/mcp", S(MCP_BATCH)};
        struct resp rs = {200, "application/json", cases[i].body, strlen(cases[i].body)};
        struct result ref;
        all_splits(x, &rq, &rs, cases[i].body, strlen(cases[i].body), 0, &ref);
        assert_string_equal(ref.ev.reason, cases[i].reason);
        assert_string_equal(ref.ev.tool, "search"); /* the first */
        assert_string_equal(ref.ev.rpc_method, "tools/call");
        assert_int_equal(ref.unparsed, 0);
        result_free(&ref);
    }
    /* Answered one event at a time over SSE. */
    static const char sse[] =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"req-b\",\"result\":{}}\n\n"
        "event: message\ndata: [{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}]\n\n";
    mcp_expect(x, S(MCP_BATCH), 200, "text/event-stream", S(sse), "", 0);
    tg_xchg_free(x);
}

static void test_mcp_error_document(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    const char *out;
    size_t outlen;
    char buf[256];
    tg_xchg_begin(x, TG_ROUTE_MCP, S("/mcp"));
    tg_xchg_request(x, S(MCP_CALL), &out, &outlen);
    static const char want[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32001,"
                               "\"message\":\"tool \\\"get_weather\\\" is not allowed\"}}";
    assert_int_equal(tg_xchg_mcp_error(x, "tool \"get_weather\" is not allowed", buf, sizeof buf),
                     sizeof want - 1);
    assert_string_equal(buf, want);
    /* The buffer must hold the text and its NUL: one byte short is 0 and an empty string. */
    assert_int_equal(tg_xchg_mcp_error(x, "tool \"get_weather\" is not allowed", buf, sizeof want),
                     sizeof want - 1);
    assert_string_equal(buf, want);
    assert_int_equal(
        tg_xchg_mcp_error(x, "tool \"get_weather\" is not allowed", buf, sizeof want - 1), 0);
    assert_string_equal(buf, "");
    assert_int_equal(tg_xchg_mcp_error(x, "x", buf, 0), 0);

    /* A string id is returned as a string. */
    tg_xchg_begin(x, TG_ROUTE_MCP, S("/mcp"));
    tg_xchg_request(x,
                    S("{\"jsonrpc\":\"2.0\",\"id\":\"c0ffee\",\"method\":\"tools/call\","
                      "\"params\":{\"name\":\"search\"}}"),
                    &out, &outlen);
    static const char want_str[] = "{\"jsonrpc\":\"2.0\",\"id\":\"c0ffee\",\"error\":{\"code\":"
                                   "-32001,\"message\":\"rate limited\"}}";
    assert_int_equal(tg_xchg_mcp_error(x, "rate limited", buf, sizeof buf), sizeof want_str - 1);
    assert_string_equal(buf, want_str);
    /* A body that could not be read: one error with a null id, as JSON-RPC requires. */
    tg_xchg_begin(x, TG_ROUTE_MCP, S("/mcp"));
    tg_xchg_request(x, S("{\"jsonrpc\":"), &out, &outlen);
    assert_true(tg_xchg_mcp_error(x, "refused", buf, sizeof buf) > 0);
    assert_string_equal(buf, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32001,"
                             "\"message\":\"refused\"}}");
    tg_xchg_free(x);
}

/* A POST of notifications only has no answer to wait for. */
static void test_mcp_notification_only(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    static const char note[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    for (int status = 200; status <= 202; status += 2) {
        const char *out;
        size_t outlen;
        tg_xchg_begin(x, TG_ROUTE_MCP, S("/mcp"));
        tg_xchg_request(x, S(note), &out, &outlen);
        assert_int_equal(tg_xchg_ntools(x), 0);
        tg_xchg_response_head(x, status, NULL, 0);
        assert_int_equal(tg_xchg_rewrites(x), 0);
        struct out o = {0};
        assert_int_equal(tg_xchg_response_end(x, collect, &o), 0);
        assert_int_equal(o.calls, 0);
        tg_event_t ev;
        int unparsed = 7;
        event_init(&ev);
        tg_xchg_finish(x, &ev, &unparsed);
        assert_int_equal(unparsed, 0);
        assert_string_equal(ev.reason, "");
        assert_string_equal(ev.rpc_method, "notifications/initialized");
        assert_string_equal(ev.tool, "");
    }
    /* A response posted back to the server (no method): nothing to answer either. */
    mcp_expect(x, S("{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"roots\":[]}}"), 202, NULL, "", 0,
               "", 0);
    tg_xchg_free(x);
}

/* Bodies refused before forwarding: a nested batch, a tools/call without an id, a tool name
 * with a NUL; a valid body is not. */
static void test_mcp_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int invalid;
    } cases[] = {
        {"[[" MCP_CALL "]]", 1},
        {"[" MCP_CALL ",[" MCP_CALL "]]", 1},
        {"[[]]", 1},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"add\"}}", 1},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}",
         1},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"echo\\u0000secret\"}}",
         1},
        {"[" MCP_CALL ",{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{"
         "\"name\":\"\\u0000\"}}]",
         1},
        /* A tools/call sharing its id with another request (either order). */
        {"[" MCP_CALL "," MCP_CALL "]", 1},
        {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}," MCP_CALL "]", 1},
        {"[" MCP_CALL ",{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}]", 1},
        /* Ids equal as JSON values only: 1 and "1" differ. */
        {"[" MCP_CALL ",{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"method\":\"tools/list\"}]", 0},
        /* Other requests may share ids among themselves (no call to credit). */
        {"[{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"},{\"jsonrpc\":\"2.0\",\"id\":9,"
         "\"method\":\"ping\"}]",
         0},
        {MCP_CALL, 0},
        {MCP_BATCH, 0},
        {"[]", 0},
        /* A NUL elsewhere (an argument) is no concern of the tool rules. */
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\","
         "\"arguments\":{\"x\":\"\\u0000\"}}}",
         0},
        /* A notification that is not a call needs no id. */
        {"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", 0},
    };
    tg_xchg_t *x = tg_xchg_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *out;
        size_t outlen;
        tg_xchg_begin(x, TG_ROUTE_MCP, S("/mcp"));
        tg_xchg_request(x, cases[i].body, strlen(cases[i].body), &out, &outlen);
        print_message("case %zu\n", i);
        if (cases[i].invalid)
            assert_non_null(tg_xchg_mcp_invalid(x));
        else
            assert_null(tg_xchg_mcp_invalid(x));
    }
    tg_xchg_free(x);
}

/* Each call of a batch is billed by its own result. */
static void test_mcp_partial(void **state)
{
    (void)state;
    static const char req[] =
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}},"
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"},"
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"b\"}},"
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"c\"}},"
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"d\"}}]";
    static const char resp[] =
        "[{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}},"
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}},"
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"isError\":true}},"
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}},"
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32601,\"message\":\"no\"}}]";
    tg_xchg_t *x = tg_xchg_new();
    struct req rq = {TG_ROUTE_MCP, "/mcp", S(req)};
    struct resp rs = {200, "application/json", S(resp)};
    struct result r;
    run(x, &rq, &rs, 7, NULL, 0, resp, sizeof resp - 1, &r);
    assert_string_equal(r.ev.reason, "partial:3/5");
    assert_int_equal(tg_xchg_partial(x), 1);
    assert_int_equal(tg_xchg_ntools(x), 4);
    static const int billed[] = {1, 0, 0, 1}; /* a ok, b tool error, c rpc error, d ok */
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(tg_xchg_call_billed(x, i), billed[i]);
    assert_int_equal(tg_xchg_call_billed(x, 4), 0); /* no such call */
    result_free(&r);
    /* All answered well: no reason, every call billed. */
    static const char all_ok[] =
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}},{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}"
        ","
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}},{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{}},"
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}]";
    rs = (struct resp){200, "application/json", S(all_ok)};
    run(x, &rq, &rs, 0, NULL, 0, all_ok, sizeof all_ok - 1, &r);
    assert_string_equal(r.ev.reason, "");
    assert_int_equal(tg_xchg_partial(x), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(tg_xchg_call_billed(x, i), 1);
    result_free(&r);
    /* None good: failed, nothing billed. */
    static const char none[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                               "\"message\":\"Parse error\"}}";
    rs = (struct resp){200, "application/json", S(none)};
    run(x, &rq, &rs, 0, NULL, 0, none, sizeof none - 1, &r);
    assert_string_equal(r.ev.reason, "no_result");
    assert_int_equal(tg_xchg_partial(x), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(tg_xchg_call_billed(x, i), 0);
    result_free(&r);
    tg_xchg_free(x);
}

/* An endpoint tollgate does not recognise, with a body: counted as an AI call, read for
 * its model and max tokens when JSON, metered from a usage object of the route's kind when
 * the answer has one, and not "unparsed" when it has none. */
static void test_unknown_endpoint(void **state)
{
    (void)state;
    static const char oa_usage[] = "{\"model\":\"gpt-4o-2024-08-06\",\"usage\":{\"prompt_tokens\":"
                                   "5,\"completion_tokens\":6}}";
    static const char an_usage[] = "{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":7,"
                                   "\"output_tokens\":8}}";
    static const struct {
        tg_route_kind_t kind;
        const char *path, *body, *answer;
        int unknown;
        int64_t in, out;
    } cases[] = {
        {TG_ROUTE_OPENAI, "/v1/chat/completions/", "{\"model\":\"gpt-4o\"}", oa_usage, 1, 5, 6},
        {TG_ROUTE_OPENAI, "/v1/chat/completions;a=b", "{\"model\":\"gpt-4o\"}", oa_usage, 1, 5, 6},
        {TG_ROUTE_OPENAI, "/v1/something-new", "not json at all", oa_usage, 1, 5, 6},
        {TG_ROUTE_OPENAI, "/v1/something-new", "{\"model\":\"m\"}", "{\"ok\":true}", 1, -1, -1},
        {TG_ROUTE_ANTHROPIC, "/v1/messagesX", "{\"model\":\"claude-x\"}", an_usage, 1, 7, 8},
        {TG_ROUTE_OPENAI, "/v1/moderations", "{\"input\":\"x\"}", oa_usage, 0, -1, -1},
        {TG_ROUTE_ANTHROPIC, "/v1/messages/count_tokens", "{}", an_usage, 0, -1, -1},
    };
    tg_xchg_t *x = tg_xchg_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case %zu: %s\n", i, cases[i].path);
        struct req rq = {cases[i].kind, cases[i].path, cases[i].body, strlen(cases[i].body)};
        struct resp rs = {200, "application/json", cases[i].answer, strlen(cases[i].answer)};
        struct result r;
        run(x, &rq, &rs, 3, NULL, 0, rs.body, rs.len, &r);
        assert_int_equal(tg_xchg_unknown_endpoint(x), cases[i].unknown);
        assert_int_equal(tg_xchg_counts_tokens(x), cases[i].unknown);
        assert_int_equal(tg_xchg_request_unreadable(x), 0);
        assert_int_equal(r.ev.tokens_in, cases[i].in);
        assert_int_equal(r.ev.tokens_out, cases[i].out);
        assert_int_equal(r.unparsed, 0);
        result_free(&r);
    }
    /* The request's model and max tokens are read for the estimate. */
    const char *out;
    size_t outlen;
    tg_xchg_begin(x, TG_ROUTE_OPENAI, S("/v1/chat/completions/"));
    tg_xchg_request(x, S("{\"model\":\"gpt-4o\",\"max_tokens\":33,\"stream\":true}"), &out,
                    &outlen);
    assert_null(out); /* (not rewritten: only known streams are) */
    assert_string_equal(tg_xchg_model(x), "gpt-4o");
    assert_int_equal(tg_xchg_max_output(x), 33);
    /* Without a body (GET) it is not an AI call. */
    tg_xchg_begin(x, TG_ROUTE_OPENAI, S("/v1/files"));
    tg_xchg_request(x, "", 0, &out, &outlen);
    assert_int_equal(tg_xchg_unknown_endpoint(x), 0);
    assert_int_equal(tg_xchg_counts_tokens(x), 0);
    tg_xchg_free(x);
}

/* The client leaves: nothing more is emitted, the usage is still read, and the estimate
 * counts what the upstream sent, before and after (it generated and bills it all). */
static void test_client_gone(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    const char *out;
    size_t outlen;
    /* A stream (rewritten): two events delivered, then the client leaves. */
    tg_xchg_begin(x, TG_ROUTE_OPENAI, S("/v1/chat/completions"));
    tg_xchg_request(x, S(CHAT_REQ), &out, &outlen);
    tg_xchg_response_head(x, 200, S("text/event-stream"));
    const char *cut = strstr(chat_with_usage, "data: " C_TRICKY);
    assert_non_null(cut);
    size_t first = (size_t)(cut - chat_with_usage);
    struct out o = {0};
    assert_int_equal(tg_xchg_response_body(x, chat_with_usage, first, collect, &o), 0);
    size_t delivered = o.len;
    assert_int_equal(tg_xchg_estimate_out(x), 2);
    tg_xchg_client_gone(x);
    assert_int_equal(tg_xchg_response_body(x, chat_with_usage + first,
                                           sizeof chat_with_usage - 1 - first, collect, &o),
                     0);
    assert_int_equal(tg_xchg_response_end(x, collect, &o), 0);
    assert_int_equal(o.len, delivered);
    assert_int_equal(tg_xchg_estimate_out(x), 5); /* (every chunk the upstream sent) */
    tg_event_t ev;
    int unparsed;
    event_init(&ev);
    tg_xchg_finish(x, &ev, &unparsed);
    assert_int_equal(ev.tokens_in, 19);
    assert_int_equal(ev.tokens_out, 10);
    free(o.p);

    /* An Anthropic stream the client left, cut before message_delta: the input counts
     * stand, the output (message_start's is provisional) is unknown; one content delta was
     * delivered (message_start, content_block_start and ping carry no text). */
    const char *stop = strstr(anthropic_stream, "event: content_block_stop");
    assert_non_null(stop);
    for (int gone = 0; gone < 2; gone++) {
        tg_xchg_begin(x, TG_ROUTE_ANTHROPIC, S("/v1/messages"));
        tg_xchg_request(x, S("{\"model\":\"claude-3-5-haiku-latest\",\"stream\":true}"), &out,
                        &outlen);
        tg_xchg_response_head(x, 200, S("text/event-stream"));
        memset(&o, 0, sizeof o);
        assert_int_equal(tg_xchg_response_body(x, anthropic_stream,
                                               (size_t)(stop - anthropic_stream), collect, &o),
                         0);
        assert_int_equal(tg_xchg_estimate_out(x), 1);
        if (gone) tg_xchg_client_gone(x);
        event_init(&ev);
        tg_xchg_finish(x, &ev, &unparsed);
        assert_int_equal(ev.tokens_in, 25);
        assert_int_equal(ev.tokens_cached, 300);
        /* (A stream that merely ended early keeps what it reported, as before.) */
        assert_int_equal(ev.tokens_out, gone ? TG_TOKENS_UNKNOWN : 0);
        free(o.p);
    }
    /* The whole stream, the client gone midway: the final count is taken. */
    tg_xchg_begin(x, TG_ROUTE_ANTHROPIC, S("/v1/messages"));
    tg_xchg_request(x, S("{\"model\":\"claude-3-5-haiku-latest\",\"stream\":true}"), &out, &outlen);
    tg_xchg_response_head(x, 200, S("text/event-stream"));
    memset(&o, 0, sizeof o);
    assert_int_equal(tg_xchg_response_body(x, anthropic_stream, 40, collect, &o), 0);
    tg_xchg_client_gone(x);
    assert_int_equal(tg_xchg_response_body(x, anthropic_stream + 40,
                                           sizeof anthropic_stream - 1 - 40, collect, &o),
                     0);
    assert_int_equal(o.len, 40);
    event_init(&ev);
    tg_xchg_finish(x, &ev, &unparsed);
    assert_int_equal(ev.tokens_out, 15);
    free(o.p);

    /* A JSON answer: a token per 4 bytes the upstream sent, at most max_tokens. */
    static const char json[] =
        "{\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
        "\"completion_tokens\":4}}";
    for (int max = 0; max < 2; max++) {
        tg_xchg_begin(x, TG_ROUTE_OPENAI, S("/v1/chat/completions"));
        if (max)
            tg_xchg_request(x, S("{\"model\":\"gpt-4o\",\"max_tokens\":2}"), &out, &outlen);
        else
            tg_xchg_request(x, S("{\"model\":\"gpt-4o\"}"), &out, &outlen);
        tg_xchg_response_head(x, 200, S("application/json"));
        memset(&o, 0, sizeof o);
        assert_int_equal(tg_xchg_response_body(x, json, 17, collect, &o), 0);
        tg_xchg_client_gone(x);
        assert_int_equal(tg_xchg_response_body(x, json + 17, sizeof json - 1 - 17, collect, &o), 0);
        assert_int_equal(o.len, 17);
        assert_int_equal(tg_xchg_estimate_out(x), max ? 2 : (int64_t)(sizeof json - 1 + 3) / 4);
        event_init(&ev);
        tg_xchg_finish(x, &ev, &unparsed);
        assert_int_equal(ev.tokens_out, 4);
        free(o.p);
    }
    tg_xchg_free(x);
}

/* Tool results are read whole up to 4 MiB, JSON or one SSE event; a larger one is
 * forwarded and still billed (a 2xx that was too large to read is not "no result"), and the
 * exchange says it could not be read. */
static void test_mcp_large_results(void **state)
{
    (void)state;
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":"
                               "\"text\",\"text\":\"";
    static const char tail[] = "\"}],\"isError\":false}}";
    tg_xchg_t *x = tg_xchg_new();
    static const size_t sizes[] = {2u << 20, 5u << 20};
    for (size_t i = 0; i < 2; i++) {
        for (int sse = 0; sse < 2; sse++) {
            struct sb b = {0};
            if (sse) sb_str(&b, "event: message\ndata: ");
            sb_str(&b, head);
            char *fill = malloc(sizes[i]);
            assert_non_null(fill);
            memset(fill, 'a', sizes[i]);
            sb_put(&b, fill, sizes[i]);
            free(fill);
            sb_str(&b, tail);
            if (sse) sb_str(&b, "\n\n");
            struct req rq = {TG_ROUTE_MCP, "/mcp", S(MCP_CALL)};
            struct resp rs = {200, sse ? "text/event-stream" : "application/json", b.p, b.len};
            struct result r;
            run(x, &rq, &rs, 65536, NULL, 0, b.p, b.len, &r);
            assert_int_equal(r.o.len, b.len);
            assert_string_equal(r.ev.reason, "");
            assert_int_equal(r.unparsed, i == 0 ? 0 : 1);
            assert_string_equal(r.ev.tool, "get_weather");
            result_free(&r);
            free(b.p);
        }
    }
    tg_xchg_free(x);
}

/* An event that begins within what is held for rewriting (1 MiB + 4 KiB) and ends past it
 * in the chunk that completes it is still rewritten whole; one still unfinished past it is
 * not (the stream then passes as it came). */
static void test_event_ends_past_hold_cap(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    tg_xchg_set_max_body(x, 1u << 20); /* the parser reads events up to 7 MiB */
    struct sb in = {0}, want = {0};
    sb_str(&in, "data: " C_ROLE ",\"usage\":null}\n\n");
    sb_str(&want, "data: " C_ROLE "}\n\n");
    size_t big_at = in.len;
    struct sb big = {0};
    sb_str(&big, "data: " CHUNK "{\"index\":0,\"delta\":{\"content\":\"");
    for (size_t i = 0; i < ((1u << 20) + 8192) / 64; i++)
        sb_str(&big, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    sb_str(&big, "\"},\"logprobs\":null,\"finish_reason\":null}]");
    sb_put(&in, big.p, big.len);
    sb_put(&want, big.p, big.len);
    sb_str(&in, ",\"usage\":null}\n\n");
    sb_str(&want, "}\n\n");
    size_t big_end = in.len;
    sb_str(&in, "data: " C_USAGE "\n\ndata: [DONE]\n\n");
    sb_str(&want, "data: [DONE]\n\n");
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ)};
    struct resp rs = {200, "text/event-stream", in.p, in.len};
    struct result ref, r;
    run(x, &rq, &rs, 0, NULL, 0, want.p, want.len, &ref);
    check_same(&ref, &ref, want.p, want.len, "whole", 0, 0);
    assert_int_equal(ref.rewrites, 1);
    assert_int_equal(ref.unparsed, 0);
    assert_int_equal(ref.ev.tokens_out, 10);
    /* Held 1 MiB (under the cap), then the chunk that ends the event goes past it. */
    size_t cuts[2] = {big_at + (1u << 20), big_end + 3};
    run(x, &rq, &rs, 0, cuts, 2, want.p, want.len, &r);
    check_same(&ref, &r, want.p, want.len, "in three at", cuts[0], 0);
    result_free(&r);
    /* Held past the cap before the event ended: from there on the bytes pass as they came
     * (the usage chunk included), and the answer is flagged. */
    size_t cuts2[2] = {big_at + (1u << 20) + 6000, big_end};
    run(x, &rq, &rs, 0, cuts2, 2, NULL, 0, &r);
    assert_int_equal(r.o.len, in.len - (sizeof "data: " C_ROLE ",\"usage\":null}\n\n" - 1) +
                                  (sizeof "data: " C_ROLE "}\n\n" - 1));
    assert_memory_equal(r.o.p + (big_at - 13), in.p + big_at, in.len - big_at);
    assert_int_equal(r.unparsed, 0);       /* (its usage came: the tokens are known) */
    assert_int_equal(r.ev.tokens_out, 10); /* the usage is still read */
    result_free(&r);
    result_free(&ref);
    free(big.p);
    free(in.p);
    free(want.p);
    tg_xchg_free(x);
}

/* ---- 6. an event over the cap ---------------------------------------------------------- */

/* Events before the big one are rewritten; from the big one on, everything passes as it
 * came, including the usage chunk, whose usage is still read. */
static void test_oversize_event_ends_rewriting(void **state)
{
    (void)state;
    static const char before_with[] = "data: " C_ROLE ",\"usage\":null}\n\n"
                                      "data: " C_HELLO ",\"usage\":null}\n\n";
    static const char before_plain[] = "data: " C_ROLE "}\n\n"
                                       "data: " C_HELLO "}\n\n";
    static const char *const afters[] = {
        "data: " C_STOP ",\"usage\":null}\n\ndata: " C_USAGE "\n\ndata: [DONE]\n\n",
        /* The usage chunk right after the big event. */
        "data: " C_USAGE "\n\ndata: [DONE]\n\n",
    };
    tg_xchg_t *x = tg_xchg_new();
    for (size_t e = 0; e < 2; e++) {
        for (size_t a = 0; a < 2; a++) {
            struct sb in = {0}, want = {0};
            size_t n;
            char *s = with_eol(before_with, eols[e], &n);
            sb_put(&in, s, n);
            free(s);
            s = with_eol(before_plain, eols[e], &n);
            sb_put(&want, s, n);
            free(s);
            size_t big_at = in.len, want_big_at = want.len;
            /* One chunk with 1.5 MiB of content. */
            sb_str(&in, "data: " CHUNK "{\"index\":0,\"delta\":{\"content\":\"");
            for (size_t i = 0; i < (3u << 19) / 64; i++)
                sb_str(&in, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
            sb_str(&in, "\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}");
            sb_str(&in, eols[e]);
            sb_str(&in, eols[e]);
            size_t big_end = in.len;
            s = with_eol(afters[a], eols[e], &n);
            sb_put(&in, s, n);
            free(s);
            sb_put(&want, in.p + big_at, in.len - big_at);
            assert_int_equal(want.len - want_big_at, in.len - big_at);

            struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ)};
            struct resp rs = {200, "text/event-stream", in.p, in.len};
            struct result ref, r;
            run(x, &rq, &rs, 0, NULL, 0, want.p, want.len, &ref);
            check_same(&ref, &ref, want.p, want.len, "whole", 0, 0);
            assert_int_equal(ref.rewrites, 1);
            assert_int_equal(ref.ev.tokens_in, 19);
            assert_int_equal(ref.ev.tokens_out, 10);
            assert_int_equal(ref.ev.tokens_cached, 6);
            assert_string_equal(ref.ev.model, "gpt-4o-mini-2024-07-18");
            assert_int_equal(ref.unparsed, 0);

            static const size_t steps[] = {1, 4096, 65536, 1u << 20};
            for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
                if (steps[i] == 1 && (e || a)) continue; /* slow: once is enough */
                run(x, &rq, &rs, steps[i], NULL, 0, want.p, want.len, &r);
                check_same(&ref, &r, want.p, want.len, "in pieces of", steps[i], 0);
                result_free(&r);
            }
            /* In two: around the start and the end of the big event, and across it. */
            for (size_t c = 0; c <= in.len;) {
                size_t cuts[1] = {c};
                run(x, &rq, &rs, 0, cuts, 1, want.p, want.len, &r);
                check_same(&ref, &r, want.p, want.len, "in two at", c, 0);
                result_free(&r);
                if (c < big_at + 64 || (c + 64 >= big_end && c < big_end + 64) || c + 64 >= in.len)
                    c += c < big_at ? 7 : 1;
                else if (c < big_end)
                    c = c + 131071 < big_end - 64 ? c + 131071 : big_end - 64;
                else
                    c += 5;
            }
            result_free(&ref);
            free(in.p);
            free(want.p);
        }
    }
    tg_xchg_free(x);
}

/* ---- 7. one tg_xchg_t, many requests ---------------------------------------------------- */

struct scenario {
    struct req rq;
    struct resp rs;
    const char *expect;
    size_t elen;
};

static void test_reuse(void **state)
{
    (void)state;
    size_t big_n, plain_n, with_n;
    char *big = big_embeddings(2u << 20, 1, &big_n);
    char *with_crlf = with_eol(chat_with_usage, "\r\n", &with_n);
    char *plain_crlf = with_eol(chat_plain, "\r\n", &plain_n);
    static const char ok_json[] = "{\"model\":\"gpt-4o-2024-08-06\",\"usage\":{\"prompt_tokens\":"
                                  "3,\"completion_tokens\":4}}";
    static const char mcp_ok[] = "[{\"jsonrpc\":\"2.0\",\"id\":\"req-b\",\"result\":{}},"
                                 "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"isError\":true}}]";
    const struct scenario sc[] = {
        {{TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ)},
         {200, "text/event-stream", with_crlf, with_n},
         plain_crlf,
         plain_n},
        {{TG_ROUTE_MCP, "/mcp", S(MCP_BATCH)}, {200, "application/json", S(mcp_ok)}, S(mcp_ok)},
        {{TG_ROUTE_OPENAI, "/v1/embeddings", S("{\"input\":\"x\"}")},
         {200, "application/json", big, big_n},
         big,
         big_n},
        {{TG_ROUTE_ANTHROPIC, "/v1/messages", S("{\"model\":\"claude-3-5-haiku-latest\"}")},
         {200, "text/event-stream", S(anthropic_stream)},
         S(anthropic_stream)},
        {{TG_ROUTE_OPENAI, "/v1/chat/completions", S("{\"model\":\"gpt-4o\"}")},
         {503, "application/json", S(ok_json)},
         S(ok_json)},
        {{TG_ROUTE_OPENAI, "/v1/chat/completions", S("{\"stream\":false}")},
         {200, "application/json", S(ok_json)},
         S(ok_json)},
        {{TG_ROUTE_MCP, "/mcp", S(MCP_CALL)}, {200, "application/json", S("{")}, S("{")},
        {{TG_ROUTE_OPENAI, "/v1/models", S("")}, {200, "application/json", S(ok_json)}, S(ok_json)},
    };
    enum { NSC = sizeof sc / sizeof sc[0] };
    struct result ref[NSC];
    for (size_t i = 0; i < NSC; i++) {
        tg_xchg_t *fresh = tg_xchg_new();
        run(fresh, &sc[i].rq, &sc[i].rs, 0, NULL, 0, sc[i].expect, sc[i].elen, &ref[i]);
        check_same(&ref[i], &ref[i], sc[i].expect, sc[i].elen, "fresh", i, 0);
        tg_xchg_free(fresh);
    }
    /* What each of them must report, so that equal-to-fresh means right. */
    assert_int_equal(ref[0].ev.tokens_in, 19);
    assert_string_equal(ref[1].ev.reason, "partial:1/2");
    assert_int_equal(ref[2].ev.tokens_in, 5120);
    assert_int_equal(ref[3].ev.tokens_out, 15);
    assert_int_equal(ref[4].ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_int_equal(ref[4].unparsed, 0);
    assert_string_equal(ref[5].ev.model, "gpt-4o-2024-08-06");
    assert_int_equal(ref[6].unparsed, 1);
    assert_string_equal(ref[6].ev.reason, "no_result");
    assert_int_equal(ref[7].ev.tokens_in, TG_TOKENS_UNKNOWN);

    tg_xchg_t *x = tg_xchg_new();
    for (size_t round = 0; round < 60; round++) {
        size_t i = (round * 5 + round / NSC) % NSC;
        struct result r;
        run(x, &sc[i].rq, &sc[i].rs, round % 3 ? 97 * round : 0, NULL, 0, sc[i].expect, sc[i].elen,
            &r);
        check_same(&ref[i], &r, sc[i].expect, sc[i].elen, "reused, scenario", i, round);
        result_free(&r);

        /* Abandoned halfway (the client went away): the next exchange starts clean. */
        if (round % 4 == 1) {
            const char *o;
            size_t ol;
            struct out out = {0};
            request(x, &sc[i].rq, &o, &ol);
            tg_xchg_response_head(x, sc[i].rs.status, sc[i].rs.ctype, strlen(sc[i].rs.ctype));
            tg_xchg_response_body(x, sc[i].rs.body, sc[i].rs.len / 2, collect, &out);
            free(out.p);
        }
        /* Refused before any response: finish without one. */
        if (round % 4 == 2) {
            const char *o;
            size_t ol;
            request(x, &sc[0].rq, &o, &ol);
            tg_event_t ev;
            int unparsed = 7;
            event_init(&ev);
            tg_xchg_finish(x, &ev, &unparsed);
            assert_int_equal(unparsed, 0);
            assert_int_equal(ev.tokens_in, TG_TOKENS_UNKNOWN);
            assert_string_equal(ev.model, "gpt-4o-mini");
        }
    }
    tg_xchg_free(x);
    for (size_t i = 0; i < NSC; i++)
        result_free(&ref[i]);
    free(big);
    free(with_crlf);
    free(plain_crlf);
}

/* Freed in the middle of a response: nothing leaks (checked under ASan). */
static void test_free_mid_response(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    const char *o;
    size_t ol;
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ)};
    request(x, &rq, &o, &ol);
    tg_xchg_response_head(x, 200, S("text/event-stream"));
    struct out out = {0};
    tg_xchg_response_body(x, chat_with_usage, 300, collect, &out);
    tg_xchg_free(x);
    free(out.p);

    x = tg_xchg_new();
    struct req mq = {TG_ROUTE_MCP, "/mcp", S(MCP_BATCH)};
    request(x, &mq, &o, &ol);
    tg_xchg_response_head(x, 200, S("application/json"));
    out = (struct out){0};
    tg_xchg_response_body(x, "[{\"jsonrpc\"", 11, collect, &out);
    tg_xchg_free(x);
    free(out.p);
}

/* ---- 7. compressed answers ------------------------------------------------------------ */

/* One exchange whose answer (plain, len) arrives encoded with coding (a test coding name,
 * see meter/compress.h; NULL: sent as it is under the header value hdr) in pieces of step
 * bytes (0: whole). The client must get exactly the encoded bytes. */
static void run_coded(tg_xchg_t *x, const struct req *rq, const char *ctype, const char *plain,
                      size_t len, const char *coding, const char *hdr, size_t step,
                      struct result *r)
{
    memset(r, 0, sizeof *r);
    event_init(&r->ev);
    struct enc e = coding ? encode(coding, plain, len) : encode("identity", plain, len);
    const char *out;
    size_t outlen;
    request(x, rq, &out, &outlen);
    r->req_rewritten = out != NULL;
    if (hdr) tg_xchg_response_coding(x, hdr, strlen(hdr));
    tg_xchg_response_head(x, 200, ctype, strlen(ctype));
    r->rewrites = tg_xchg_rewrites(x);
    for (size_t off = 0; off < e.len;) {
        size_t k = step && e.len - off > step ? step : e.len - off;
        char *piece = malloc(k);
        memcpy(piece, e.p + off, k);
        assert_int_equal(tg_xchg_response_body(x, piece, k, collect, &r->o), 0);
        free(piece);
        off += k;
        assert_int_equal(r->o.len, off); /* passed through as it came, at once */
    }
    assert_int_equal(tg_xchg_response_end(x, collect, &r->o), 0);
    tg_xchg_finish(x, &r->ev, &r->unparsed);
    assert_int_equal(r->o.len, e.len);
    if (e.len) assert_memory_equal(r->o.p, e.p, e.len);
    enc_free(&e);
}

static const char *const CODED[] = {"gzip", "deflate", "deflate-raw", "br", "zstd"};

static void test_compressed_json(void **state)
{
    (void)state;
    static const char body[] =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-2024-08-06\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"}}],"
        "\"usage\":{\"prompt_tokens\":1117,\"completion_tokens\":46,\"total_tokens\":1163,"
        "\"prompt_tokens_details\":{\"cached_tokens\":1024}}}";
    static const char abody[] =
        "{\"id\":\"msg_1\",\"type\":\"message\",\"model\":\"claude-sonnet-4-20250514\","
        "\"content\":[],\"usage\":{\"input_tokens\":21,\"cache_creation_input_tokens\":1500,"
        "\"cache_read_input_tokens\":3000,\"output_tokens\":42}}";
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions",
                     S("{\"model\":\"gpt-4o\",\"messages\":[]}")};
    struct req arq = {TG_ROUTE_ANTHROPIC, "/v1/messages",
                      S("{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":9}")};
    tg_xchg_t *x = tg_xchg_new();
    for (size_t c = 0; c < sizeof CODED / sizeof CODED[0]; c++) {
        const char *hdr = strcmp(CODED[c], "deflate-raw") == 0 ? "deflate" : CODED[c];
        for (size_t step = 0; step < 40; step += (step < 3 ? 1 : 9)) {
            struct result r;
            run_coded(x, &rq, "application/json", S(body), CODED[c], hdr, step, &r);
            assert_int_equal(r.unparsed, 0);
            assert_int_equal(r.ev.tokens_in, 1117);
            assert_int_equal(r.ev.tokens_out, 46);
            assert_int_equal(r.ev.tokens_cached, 1024);
            assert_string_equal(tg_xchg_decode_flag(x), "");
            result_free(&r);
            run_coded(x, &arq, "application/json", S(abody), CODED[c], hdr, step, &r);
            assert_int_equal(r.ev.tokens_in, 21);
            assert_int_equal(r.ev.tokens_out, 42);
            assert_int_equal(r.ev.tokens_cached, 3000);
            assert_int_equal(r.ev.tokens_cache_write, 1500);
            result_free(&r);
        }
    }
    /* Without the decoder (what tollgate did before): the same bytes are unreadable. */
    struct result r;
    run_coded(x, &rq, "application/json", S(body), "gzip", NULL, 0, &r);
    assert_int_equal(r.unparsed, 1);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    result_free(&r);
    /* identity named, and then an identity answer after compressed ones: nothing flagged. */
    run_coded(x, &rq, "application/json", S(body), NULL, "identity", 1, &r);
    assert_int_equal(r.ev.tokens_in, 1117);
    assert_string_equal(tg_xchg_decode_flag(x), "");
    result_free(&r);
    tg_xchg_free(x);
}

static void test_compressed_problems(void **state)
{
    (void)state;
    static const char body[] =
        "{\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":"
        "{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}";
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions",
                     S("{\"model\":\"gpt-4o\",\"messages\":[]}")};
    tg_xchg_t *x = tg_xchg_new();
    struct result r;
    /* An unknown coding: passed through, not read, flagged. */
    run_coded(x, &rq, "application/json", S(body), "gzip", "compress", 0, &r);
    assert_int_equal(r.unparsed, 1);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_string_equal(tg_xchg_decode_flag(x), "coding_unknown");
    result_free(&r);
    /* An unknown coding over what is in fact JSON: read as it is, and flagged. */
    run_coded(x, &rq, "application/json", S(body), NULL, "x-custom", 2, &r);
    assert_int_equal(r.unparsed, 0);
    assert_int_equal(r.ev.tokens_in, 7);
    assert_int_equal(r.ev.tokens_out, 3);
    assert_string_equal(tg_xchg_decode_flag(x), "coding_unknown");
    result_free(&r);
    /* A header too long to keep: unknown. */
    run_coded(x, &rq, "application/json", S(body), NULL,
              "identity, identity, identity, identity, identity, identity, identity, identity", 0,
              &r);
    assert_string_equal(tg_xchg_decode_flag(x), "coding_unknown");
    result_free(&r);
    /* Plain JSON labelled gzip: corrupt. */
    run_coded(x, &rq, "application/json", S(body), NULL, "gzip", 0, &r);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_string_equal(tg_xchg_decode_flag(x), "decode_error");
    result_free(&r);
    /* Over the decoded-size cap: 256 KiB of blanks before the answer, a bomb's ratio (far
     * above 256 to one, so the allowance per encoded byte does not cover it). */
    tg_xchg_set_decoded_max(x, 20);
    size_t pad_len = (256u << 10) + sizeof body - 1;
    char *pad = malloc(pad_len);
    assert_non_null(pad);
    memset(pad, ' ', pad_len - (sizeof body - 1));
    memcpy(pad + pad_len - (sizeof body - 1), body, sizeof body - 1);
    run_coded(x, &rq, "application/json", pad, pad_len, "br", "br", 0, &r);
    free(pad);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_int_equal(r.unparsed, 1);
    assert_string_equal(tg_xchg_decode_flag(x), "decode_cap");
    result_free(&r);
    /* ...but never below what an answer may echo of its request (3 x max_body + 4 MiB):
     * a client cannot push its own answer past the cap. */
    tg_xchg_set_max_body(x, 1u << 20);
    size_t big_len = (6u << 20) + sizeof body - 1;
    char *big = malloc(big_len);
    memset(big, ' ', big_len - (sizeof body - 1));
    memcpy(big + big_len - (sizeof body - 1), body, sizeof body - 1);
    run_coded(x, &rq, "application/json", big, big_len, "gzip", "gzip", 1u << 16, &r);
    assert_int_equal(r.ev.tokens_in, 7);
    assert_string_equal(tg_xchg_decode_flag(x), "");
    result_free(&r);
    /* (the floor is 7 MiB here, plus 256 bytes per encoded byte, about 4 MiB for 16 MiB of
     * blanks in gzip: 16 MiB is over it) */
    big = realloc(big, (16u << 20) + sizeof body - 1);
    big_len = (16u << 20) + sizeof body - 1;
    memset(big, ' ', big_len - (sizeof body - 1));
    memcpy(big + big_len - (sizeof body - 1), body, sizeof body - 1);
    run_coded(x, &rq, "application/json", big, big_len, "gzip", "gzip", 1u << 16, &r);
    assert_string_equal(tg_xchg_decode_flag(x), "decode_cap");
    result_free(&r);
    free(big);
    tg_xchg_set_decoded_max(x, 0);
    /* Truncated: the answer ends inside the stream. */
    struct enc e = encode("zstd", body, sizeof body - 1);
    const char *out;
    size_t outlen;
    request(x, &rq, &out, &outlen);
    tg_xchg_response_coding(x, S("zstd"));
    tg_xchg_response_head(x, 200, S("application/json"));
    struct out o = {0};
    assert_int_equal(tg_xchg_response_body(x, (char *)e.p, e.len - 4, collect, &o), 0);
    assert_int_equal(tg_xchg_response_end(x, collect, &o), 0);
    tg_event_t ev;
    int unparsed;
    event_init(&ev);
    tg_xchg_finish(x, &ev, &unparsed);
    assert_string_equal(tg_xchg_decode_flag(x), "decode_error");
    assert_int_equal(o.len, e.len - 4);
    free(o.p);
    enc_free(&e);
    /* The next request starts clean. */
    run_coded(x, &rq, "application/json", S(body), "gzip", "gzip", 0, &r);
    assert_int_equal(r.ev.tokens_in, 7);
    assert_string_equal(tg_xchg_decode_flag(x), "");
    result_free(&r);
    tg_xchg_free(x);
}

static void test_compressed_streams(void **state)
{
    (void)state;
    tg_xchg_t *x = tg_xchg_new();
    /* A stream tollgate would rewrite asks for identity... */
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions", S(CHAT_REQ)};
    const char *out;
    size_t outlen;
    char ae[64];
    request(x, &rq, &out, &outlen);
    assert_non_null(out);
    assert_int_equal(tg_xchg_accept_encoding(x, S("gzip, deflate"), ae, sizeof ae), 8);
    assert_memory_equal(ae, "identity", 8);
    /* ...and one that is not rewritten keeps the codings the meter reads. */
    struct req arq = {TG_ROUTE_ANTHROPIC, "/v1/messages",
                      S("{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":256,"
                        "\"stream\":true,\"messages\":[]}")};
    request(x, &arq, &out, &outlen);
    assert_null(out);
    size_t n = tg_xchg_accept_encoding(x, S("gzip, compress, br"), ae, sizeof ae);
    assert_int_equal(n, 7);
    assert_memory_equal(ae, "gzip,br", 7);
    for (size_t c = 0; c < sizeof CODED / sizeof CODED[0]; c++) {
        const char *hdr = strcmp(CODED[c], "deflate-raw") == 0 ? "deflate" : CODED[c];
        for (size_t step = 0; step < 30; step += (step < 2 ? 1 : 7)) {
            /* A compressed answer to a request tollgate rewrote: passed untouched (usage
             * chunk included), read from the decoded copy. */
            struct result r;
            run_coded(x, &rq, "text/event-stream", S(chat_with_usage), CODED[c], hdr, step, &r);
            assert_int_equal(r.req_rewritten, 1);
            assert_int_equal(r.rewrites, 0);
            assert_int_equal(r.unparsed, 0);
            assert_int_equal(r.ev.tokens_in, 19);
            assert_int_equal(r.ev.tokens_out, 10);
            assert_int_equal(r.ev.tokens_cached, 6);
            assert_string_equal(r.ev.model, "gpt-4o-mini-2024-07-18"); /* the upstream's */
            result_free(&r);
            run_coded(x, &arq, "text/event-stream", S(anthropic_stream), CODED[c], hdr, step, &r);
            assert_int_equal(r.rewrites, 0);
            assert_int_equal(r.ev.tokens_in, 25);
            assert_int_equal(r.ev.tokens_out, 15);
            assert_int_equal(r.ev.tokens_cached, 300);
            assert_int_equal(r.ev.tokens_cache_write, 40);
            result_free(&r);
        }
    }
    /* The same identity stream is still rewritten afterwards. */
    struct resp rs = {200, "text/event-stream", S(chat_with_usage)};
    struct result r;
    run(x, &rq, &rs, 0, NULL, 0, chat_plain, sizeof chat_plain - 1, &r);
    assert_int_equal(r.rewrites, 1);
    assert_int_equal(r.o.len, sizeof chat_plain - 1);
    assert_int_equal(r.ev.tokens_in, 19);
    result_free(&r);
    tg_xchg_free(x);
}

static void test_compressed_mcp(void **state)
{
    (void)state;
    static const char ok[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":"
                             "\"text\",\"text\":\"18C, sunny\"}],\"isError\":false}}";
    static const char sse[] = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":"
                              "{\"content\":[],\"isError\":true}}\n\n";
    struct req rq = {TG_ROUTE_MCP, "/mcp", S(MCP_CALL)};
    tg_xchg_t *x = tg_xchg_new();
    struct result r;
    for (size_t c = 0; c < sizeof CODED / sizeof CODED[0]; c++) {
        const char *hdr = strcmp(CODED[c], "deflate-raw") == 0 ? "deflate" : CODED[c];
        run_coded(x, &rq, "application/json", S(ok), CODED[c], hdr, 3, &r);
        assert_string_equal(r.ev.reason, "");
        assert_int_equal(r.unparsed, 0);
        assert_string_equal(r.ev.tool, "get_weather");
        result_free(&r);
        run_coded(x, &rq, "text/event-stream", S(sse), CODED[c], hdr, 5, &r);
        assert_string_equal(r.ev.reason, "tool_error"); /* read: the result said isError */
        result_free(&r);
    }
    /* Not decodable: billed (no "no_result", which would make it free) and flagged. */
    run_coded(x, &rq, "application/json", S(ok), "gzip", "compress", 0, &r);
    assert_string_equal(r.ev.reason, "");
    assert_int_equal(r.unparsed, 1);
    assert_string_equal(tg_xchg_decode_flag(x), "coding_unknown");
    result_free(&r);
    run_coded(x, &rq, "application/json", S(ok), NULL, "br", 0, &r);
    assert_string_equal(r.ev.reason, "");
    assert_string_equal(tg_xchg_decode_flag(x), "decode_error");
    result_free(&r);
    tg_xchg_free(x);
}

/* A Responses stream echoes the request's instructions in response.created and in
 * response.completed, the event with the usage: with 1.5 MiB of instructions that event was
 * over the 1 MiB event cap, skipped, and the answer unmetered (and free). The cap follows
 * what an answer may echo (3 x max_body + 4 MiB), identity or compressed. */
static void test_responses_stream_echo(void **state)
{
    (void)state;
    size_t il = 3u << 19; /* 1.5 MiB of instructions */
    char *ins = malloc(il + 1);
    assert_non_null(ins);
    memset(ins, 'a', il);
    ins[il] = '\0';
    size_t cap = 2 * il + 4096;
    char *body = malloc(cap);
    assert_non_null(body);
    int n = snprintf(body, cap,
                     "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{"
                     "\"status\":\"in_progress\",\"model\":\"gpt-4o-mini\",\"instructions\":\"%s\","
                     "\"output\":[],\"usage\":null}}\n\n"
                     "event: response.completed\ndata: {\"type\":\"response.completed\","
                     "\"response\":{\"status\":\"completed\",\"model\":\"gpt-4o-mini\","
                     "\"instructions\":\"%s\",\"output\":[],\"usage\":{\"input_tokens\":300000,"
                     "\"output_tokens\":20,\"total_tokens\":300020}}}\n\n",
                     ins, ins);
    assert_true(n > 0 && (size_t)n < cap);
    struct req rq = {TG_ROUTE_OPENAI, "/v1/responses",
                     S("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"input\":\"hi\"}")};
    tg_xchg_t *x = tg_xchg_new();
    const char *codings[] = {NULL, "gzip", "zstd"};
    for (size_t k = 0; k < 3; k++) {
        tg_xchg_set_max_body(x, 10u << 20);
        struct result r;
        if (codings[k]) {
            run_coded(x, &rq, "text/event-stream", body, (size_t)n, codings[k], codings[k],
                      1u << 14, &r);
        } else {
            struct resp rs = {200, "text/event-stream", body, (size_t)n};
            run(x, &rq, &rs, 1u << 14, NULL, 0, NULL, 0, &r);
        }
        assert_int_equal(r.ev.tokens_in, 300000);
        assert_int_equal(r.ev.tokens_out, 20);
        assert_int_equal(r.unparsed, 0);
        result_free(&r);
    }
    tg_xchg_free(x);
    free(body);
    free(ins);
}

/* A request body in a content coding is refused on metered routes (the meter reads request
 * bodies as sent): every spelling of a coding counts, identity alone does not. */
static void test_request_coded(void **state)
{
    (void)state;
    assert_true(tg_xchg_request_coded(S("gzip")));
    assert_true(tg_xchg_request_coded(S(" GZIP ")));
    assert_true(tg_xchg_request_coded(S("identity, br")));
    assert_true(tg_xchg_request_coded(S("x-custom")));
    assert_true(tg_xchg_request_coded(S("identity,identity,identity,identity,identity,zstd")));
    assert_false(tg_xchg_request_coded(S("")));
    assert_false(tg_xchg_request_coded(S(" Identity ")));
    assert_false(tg_xchg_request_coded(S("identity, ,identity")));
}

/* ---- 8. the answer's hash (audit.bodies: hash) ----------------------------------------------- */

/* One exchange with the answer hashed: the answer's bytes enc (encoded under hdr, NULL:
 * none) with status, in pieces of step bytes (0: whole); ended: tg_xchg_response_end came. */
static size_t keep_max; /* nonzero: audit.bodies: encrypt, the answer kept up to it */

/* The chat answer and request of the hash and keep tests. */
#define HASHED_BODY                                                                                \
    "{\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":"                        \
    "{\"prompt_tokens\":11,\"completion_tokens\":4,\"total_tokens\":15}}"
static struct req hashed_req(void)
{
    struct req rq = {TG_ROUTE_OPENAI, "/v1/chat/completions",
                     S("{\"model\":\"gpt-4o\",\"messages\":[]}")};
    return rq;
}

static void run_hashed(tg_xchg_t *x, const struct req *rq, int status, const char *ctype,
                       const char *hdr, const void *enc, size_t len, size_t step, int ended,
                       struct result *r)
{
    memset(r, 0, sizeof *r);
    event_init(&r->ev);
    const char *out;
    size_t outlen;
    request(x, rq, &out, &outlen);
    if (keep_max)
        tg_xchg_keep_answer(x, keep_max);
    else
        tg_xchg_hash_answer(x);
    if (hdr) tg_xchg_response_coding(x, hdr, strlen(hdr));
    tg_xchg_response_head(x, status, ctype, strlen(ctype));
    for (size_t off = 0; off < len;) {
        size_t k = step && len - off > step ? step : len - off;
        char *piece = malloc(k);
        memcpy(piece, (const char *)enc + off, k);
        assert_int_equal(tg_xchg_response_body(x, piece, k, collect, &r->o), 0);
        free(piece);
        off += k;
    }
    if (ended) assert_int_equal(tg_xchg_response_end(x, collect, &r->o), 0);
    tg_xchg_finish(x, &r->ev, &r->unparsed);
}

static void assert_sha(const unsigned char got[32], const void *p, size_t n)
{
    unsigned char want[32];
    SHA256(p, n, want);
    assert_memory_equal(got, want, 32);
}

/* audit.bodies: encrypt: the bytes hashed are the bytes kept (decoded when compressed), up
 * to the cap, flagged truncated past it, the hash still over every byte. */
static void test_answer_keep(void **state)
{
    (void)state;
    static const char body[] = HASHED_BODY;
    struct req rq = hashed_req();
    tg_xchg_t *x = tg_xchg_new();
    struct result r;
    const char *p;
    size_t n;
    int trunc;
    struct enc e = encode("gzip", body, sizeof body - 1);
    keep_max = 4096;
    run_hashed(x, &rq, 200, "application/json", "gzip", e.p, e.len, 7, 1, &r);
    assert_int_equal(tg_xchg_take_answer(x, &p, &n, &trunc), 1);
    assert_int_equal(n, sizeof body - 1);
    assert_memory_equal(p, body, n);
    assert_false(trunc);
    assert_sha(r.ev.body_sha_out, S(body));
    result_free(&r);
    keep_max = 10;
    run_hashed(x, &rq, 200, "application/json", NULL, S(body), 3, 1, &r);
    assert_int_equal(tg_xchg_take_answer(x, &p, &n, &trunc), 1);
    assert_int_equal(n, 10);
    assert_memory_equal(p, body, 10);
    assert_true(trunc);
    assert_sha(r.ev.body_sha_out, S(body)); /* every byte, past the cap too */
    tg_xchg_drop_answer(x);
    result_free(&r);
    keep_max = 0; /* hash only: nothing kept */
    run_hashed(x, &rq, 200, "application/json", NULL, S(body), 0, 1, &r);
    assert_int_equal(tg_xchg_take_answer(x, &p, &n, &trunc), 0);
    result_free(&r);
    enc_free(&e);
    tg_xchg_free(x);
}

static void test_answer_hash(void **state)
{
    (void)state;
    static const char body[] = HASHED_BODY;
    struct req rq = hashed_req();
    tg_xchg_t *x = tg_xchg_new();
    struct result r;
    /* Identity, whole or in pieces: the bytes sent. */
    for (size_t step = 0; step < 20; step += 7) {
        run_hashed(x, &rq, 200, "application/json", NULL, S(body), step, 1, &r);
        assert_int_equal(r.ev.body_hashed, TG_BODY_OUT);
        assert_int_equal(r.ev.body_out, TG_BODY_WHOLE);
        assert_sha(r.ev.body_sha_out, S(body));
        result_free(&r);
    }
    /* Compressed: the decoded answer, whatever the coding and the pieces. */
    for (size_t c = 0; c < sizeof CODED / sizeof CODED[0]; c++) {
        const char *hdr = strcmp(CODED[c], "deflate-raw") == 0 ? "deflate" : CODED[c];
        struct enc e = encode(CODED[c], body, sizeof body - 1);
        run_hashed(x, &rq, 200, "application/json", hdr, e.p, e.len, 5, 1, &r);
        assert_int_equal(r.ev.body_out, TG_BODY_WHOLE);
        assert_sha(r.ev.body_sha_out, S(body));
        assert_int_equal(r.o.len, e.len); /* the client still gets the coded bytes */
        result_free(&r);
        /* Cut inside the compressed stream: what decoded, flagged cut. */
        run_hashed(x, &rq, 200, "application/json", hdr, e.p, e.len / 2, 0, 0, &r);
        assert_int_equal(r.ev.body_hashed, TG_BODY_OUT);
        assert_int_equal(r.ev.body_out, TG_BODY_CUT);
        result_free(&r);
        enc_free(&e);
    }
    /* An error answer, gzip'd, is not read: hashed as sent, flagged coded. */
    struct enc e = encode("gzip", S("{\"error\":{}}"));
    run_hashed(x, &rq, 500, "application/json", "gzip", e.p, e.len, 0, 1, &r);
    assert_int_equal(r.ev.body_out, TG_BODY_CODED);
    assert_sha(r.ev.body_sha_out, e.p, e.len);
    result_free(&r);
    enc_free(&e);
    /* Not gzip although labelled so: the bytes decoded before the error (none). */
    run_hashed(x, &rq, 200, "application/json", "gzip", S(body), 0, 1, &r);
    assert_int_equal(r.ev.body_out, TG_BODY_DECODE_ERROR);
    assert_sha(r.ev.body_sha_out, "", 0);
    result_free(&r);
    /* A bomb past the decoded cap: hashed up to where decoding stopped, flagged. */
    size_t blen = 1u << 20;
    char *bomb = malloc(blen);
    memset(bomb, ' ', blen);
    e = encode("gzip", bomb, blen);
    tg_xchg_set_decoded_max(x, 1024);
    run_hashed(x, &rq, 200, "application/json", "gzip", e.p, e.len, 0, 1, &r);
    assert_int_equal(r.ev.body_out, TG_BODY_DECODE_CAP);
    assert_int_equal(r.ev.body_hashed, TG_BODY_OUT);
    tg_xchg_set_decoded_max(x, 0);
    result_free(&r);
    enc_free(&e);
    free(bomb);
    /* Cut identity answer: the bytes that came. */
    run_hashed(x, &rq, 200, "application/json", NULL, body, 20, 0, 0, &r);
    assert_int_equal(r.ev.body_out, TG_BODY_CUT);
    assert_sha(r.ev.body_sha_out, body, 20);
    result_free(&r);
    /* A stream tollgate rewrites: the bytes the client got (without the usage chunk). */
    static const char sse[] =
        "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
        "\"completion_tokens\":1,\"total_tokens\":4}}\n\n"
        "data: [DONE]\n\n";
    struct req srq = {TG_ROUTE_OPENAI, "/v1/chat/completions",
                      S("{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[]}")};
    run_hashed(x, &srq, 200, "text/event-stream", NULL, S(sse), 9, 1, &r);
    assert_true(r.o.len < sizeof sse - 1); /* rewritten */
    assert_int_equal(r.ev.body_out, TG_BODY_WHOLE);
    assert_sha(r.ev.body_sha_out, r.o.p, r.o.len);
    result_free(&r);
    /* The client left: still every byte the upstream sent (the drain reads on). */
    run_hashed(x, &rq, 200, "application/json", NULL, body, 10, 0, 0, &r);
    result_free(&r);
    memset(&r, 0, sizeof r);
    event_init(&r.ev);
    const char *o;
    size_t ol;
    request(x, &rq, &o, &ol);
    tg_xchg_hash_answer(x);
    tg_xchg_response_head(x, 200, S("application/json"));
    assert_int_equal(tg_xchg_response_body(x, body, 10, collect, &r.o), 0);
    tg_xchg_client_gone(x);
    assert_int_equal(tg_xchg_response_body(x, body + 10, sizeof body - 11, collect, &r.o), 0);
    assert_int_equal(tg_xchg_response_end(x, collect, &r.o), 0);
    tg_xchg_finish(x, &r.ev, &r.unparsed);
    assert_int_equal(r.o.len, 10);
    assert_sha(r.ev.body_sha_out, S(body));
    result_free(&r);
    /* Not asked (audit.bodies: none), the next request on the same exchange: no hash. */
    run(x, &rq, &(struct resp){200, "application/json", S(body)}, 0, NULL, 0, NULL, 0, &r);
    assert_int_equal(r.ev.body_hashed, 0);
    unsigned char zero[32] = {0};
    assert_memory_equal(r.ev.body_sha_out, zero, 32);
    result_free(&r);
    tg_xchg_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_member_appended),
        cmocka_unit_test(test_request_stream_options_rewritten),
        cmocka_unit_test(test_rewrite_keepalive_not_held),
        cmocka_unit_test(test_request_not_rewritten),
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_offside),
        cmocka_unit_test(test_request_not_json_response_decides),
        cmocka_unit_test(test_rewrite_chat_stream),
        cmocka_unit_test(test_rewrite_completions_stream),
        cmocka_unit_test(test_rewrite_keeps_other_bytes),
        cmocka_unit_test(test_rewrite_only_streams),
        cmocka_unit_test(test_emit_failure),
        cmocka_unit_test(test_passthrough_streams),
        cmocka_unit_test(test_json_responses),
        cmocka_unit_test(test_json_unreadable),
        cmocka_unit_test(test_json_not_observed),
        cmocka_unit_test(test_json_huge_body),
        cmocka_unit_test(test_json_token_cap),
        cmocka_unit_test(test_json_nested_usage_ignored),
        cmocka_unit_test(test_mcp_single),
        cmocka_unit_test(test_mcp_sse),
        cmocka_unit_test(test_mcp_batch),
        cmocka_unit_test(test_mcp_error_document),
        cmocka_unit_test(test_mcp_notification_only),
        cmocka_unit_test(test_mcp_large_results),
        cmocka_unit_test(test_mcp_invalid),
        cmocka_unit_test(test_mcp_partial),
        cmocka_unit_test(test_unknown_endpoint),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_event_ends_past_hold_cap),
        cmocka_unit_test(test_oversize_event_ends_rewriting),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_free_mid_response),
        cmocka_unit_test(test_compressed_json),
        cmocka_unit_test(test_answer_hash),
        cmocka_unit_test(test_answer_keep),
        cmocka_unit_test(test_compressed_problems),
        cmocka_unit_test(test_compressed_streams),
        cmocka_unit_test(test_compressed_mcp),
        cmocka_unit_test(test_request_coded),
        cmocka_unit_test(test_responses_stream_echo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
