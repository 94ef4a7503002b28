/* Tests src/meter/usage.c: every OpenAI and Anthropic response shape, JSON and streamed
 * (also through the SSE parser, cut at every byte), malformed JSON, missing usage, and
 * numbers at the edge of int64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "meter/sse.h"
#include "meter/usage.h"
#include "types/event.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_openai_chat(void **state)
{
    (void)state;
    tg_usage_t u;
    tg_usage_init(&u);
    const char *b =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"hi\"}}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,"
        "\"total_tokens\":17,\"prompt_tokens_details\":{\"cached_tokens\":4}}}";
    assert_int_equal(tg_usage_openai_json(b, strlen(b), &u), 0);
    assert_int_equal(u.known, 1);
    assert_string_equal(u.model, "gpt-4o-mini");
    assert_int_equal(u.tokens_in, 12);
    assert_int_equal(u.tokens_out, 5);
    assert_int_equal(u.tokens_cached, 4);
    assert_int_equal(u.cache_write, 0);
}

static void test_openai_completions_and_embeddings(void **state)
{
    (void)state;
    tg_usage_t u;
    tg_usage_init(&u);
    assert_int_equal(tg_usage_openai_json(S("{\"object\":\"text_completion\",\"model\":"
                                            "\"gpt-3.5-turbo-instruct\",\"usage\":{"
                                            "\"prompt_tokens\":3,\"completion_tokens\":9}}"),
                                          &u),
                     0);
    assert_int_equal(u.tokens_in, 3);
    assert_int_equal(u.tokens_out, 9);
    assert_int_equal(u.known, 1);

    tg_usage_init(&u);
    assert_int_equal(tg_usage_openai_json(S("{\"object\":\"list\",\"data\":[{\"object\":"
                                            "\"embedding\",\"embedding\":[0.1,0.2]}],\"model\":"
                                            "\"text-embedding-3-small\",\"usage\":{"
                                            "\"prompt_tokens\":8,\"total_tokens\":8}}"),
                                          &u),
                     0);
    assert_string_equal(u.model, "text-embedding-3-small");
    assert_int_equal(u.tokens_in, 8);
    assert_int_equal(u.tokens_out, 0);
    assert_int_equal(u.known, 1);
}

static void test_openai_responses(void **state)
{
    (void)state;
    tg_usage_t u;
    tg_usage_init(&u);
    assert_int_equal(tg_usage_openai_json(S("{\"id\":\"resp_1\",\"object\":\"response\","
                                            "\"model\":\"gpt-4.1\",\"output\":[],\"usage\":{"
                                            "\"input_tokens\":20,\"input_tokens_details\":{"
                                            "\"cached_tokens\":6},\"output_tokens\":11,"
                                            "\"output_tokens_details\":{\"reasoning_tokens\":0},"
                                            "\"total_tokens\":31}}"),
                                          &u),
                     0);
    assert_string_equal(u.model, "gpt-4.1");
    assert_int_equal(u.tokens_in, 20);
    assert_int_equal(u.tokens_out, 11);
    assert_int_equal(u.tokens_cached, 6);
    assert_int_equal(u.known, 1);
}

static void test_openai_missing_and_bad(void **state)
{
    (void)state;
    tg_usage_t u;
    tg_usage_init(&u);
    assert_int_equal(tg_usage_openai_json(S("{\"model\":\"m\",\"choices\":[]}"), &u), 0);
    assert_int_equal(u.known, 0);
    assert_string_equal(u.model, "m");
    assert_int_equal(tg_usage_openai_json(S("{\"model\":\"m\",\"usage\":null}"), &u), 0);
    assert_int_equal(u.known, 0);
    assert_int_equal(tg_usage_openai_json(S("{\"usage\":{\"prompt_tokens\":\"7\","
                                            "\"completion_tokens\":1.5}}"),
                                          &u),
                     0);
    assert_int_equal(u.known, 1); /* a usage object, but wrong types count as absent */
    assert_int_equal(u.tokens_in, 0);
    assert_int_equal(u.tokens_out, 0);

    tg_usage_init(&u);
    assert_int_equal(tg_usage_openai_json(S("{\"usage\":{\"prompt_tokens\":1"), &u), -1);
    assert_int_equal(tg_usage_openai_json(S("[1,2]"), &u), -1);
    assert_int_equal(tg_usage_openai_json(S(""), &u), -1);
    assert_int_equal(tg_usage_openai_json(S("<html>502</html>"), &u), -1);
    assert_int_equal(tg_usage_openai_json(S("{\"model\":5,\"usage\":[1]}"), &u), 0);
    assert_int_equal(u.known, 0);
    assert_string_equal(u.model, "");
    /* An embedded NUL is not valid JSON text. */
    assert_int_equal(tg_usage_openai_json(S("{\"a\":1}\0{\"b\":2}"), &u), -1);
}

static void test_huge_numbers(void **state)
{
    (void)state;
    tg_usage_t u;
    tg_usage_init(&u);
    assert_int_equal(tg_usage_openai_json(S("{\"usage\":{\"prompt_tokens\":9223372036854775807,"
                                            "\"completion_tokens\":-5}}"),
                                          &u),
                     0);
    /* Past TG_TOKENS_MAX: read as the most (never as nothing), so that sums of counts and
     * their prices stay inside int64 (the hostile review of /metrics: 2^62 + 2^62 tokens
     * overflowed bill.c and the store's batch sums). */
    assert_true(u.tokens_in == TG_TOKENS_MAX);
    assert_int_equal(u.tokens_out, 0); /* negative clamped */
    tg_usage_init(&u);
    assert_int_equal(tg_usage_openai_json(S("{\"usage\":{\"prompt_tokens\":1000000000000,"
                                            "\"completion_tokens\":1000000000001}}"),
                                          &u),
                     0);
    assert_true(u.tokens_in == TG_TOKENS_MAX && u.tokens_out == TG_TOKENS_MAX);
    /* Beyond int64: jansson rejects the document; nothing is recorded. */
    tg_usage_init(&u);
    assert_int_equal(
        tg_usage_openai_json(S("{\"usage\":{\"prompt_tokens\":99999999999999999999999}}"), &u), -1);
    assert_int_equal(u.known, 0);
    assert_int_equal(u.tokens_in, 0);
    /* Long model names are truncated, not overrun. */
    char body[512];
    char name[200];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    int n = snprintf(body, sizeof body, "{\"model\":\"%s\"}", name);
    assert_int_equal(tg_usage_openai_json(body, (size_t)n, &u), 0);
    assert_int_equal(strlen(u.model), sizeof u.model - 1);
}

static void test_huge_body(void **state)
{
    (void)state;
    /* A 4 MB content string before the usage object. */
    size_t big = 4u << 20;
    const char *pre = "{\"model\":\"gpt-4o\",\"choices\":[{\"message\":{\"content\":\"";
    const char *post = "\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}";
    size_t n = strlen(pre) + big + strlen(post);
    char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, pre, strlen(pre));
    memset(b + strlen(pre), 'a', big);
    memcpy(b + strlen(pre) + big, post, strlen(post));
    tg_usage_t u;
    tg_usage_init(&u);
    assert_int_equal(tg_usage_openai_json(b, n, &u), 0);
    assert_int_equal(u.tokens_out, 2);
    free(b);
}

/* --- streams, fed through the SSE parser --- */

struct ctx {
    tg_usage_t u;
    int anthropic;
};

static void on_event(void *ud, const char *ev, size_t elen, const char *data, size_t dlen)
{
    struct ctx *c = ud;
    if (c->anthropic)
        tg_usage_anthropic_event(ev, elen, data, dlen, &c->u);
    else
        tg_usage_openai_event(data, dlen, &c->u);
}

static const char openai_stream[] =
    "data: "
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: "
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\\nlo\"},\"finish_reason\":null}],"
    "\"usage\":null}\n\n"
    "data: "
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
    "data: "
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,"
    "\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n"
    "data: [DONE]\n\n";

static const char anthropic_stream[] =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\","
    "\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":3,"
    "\"cache_read_input_tokens\":7,\"output_tokens\":1}}}\r\n\r\n"
    "event: content_block_start\r\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\r\n\r\n"
    "event: ping\r\n"
    "data: {\"type\": \"ping\"}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Hello\"}}\r\n\r\n"
    "event: content_block_stop\r\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n"
    "event: message_delta\r\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
    "\"usage\":{\"output_tokens\":25}}\r\n\r\n"
    "event: message_stop\r\n"
    "data: {\"type\":\"message_stop\"}\r\n\r\n";

static void check_openai(const tg_usage_t *u)
{
    assert_int_equal(u->known, 1);
    assert_string_equal(u->model, "gpt-4o-mini-2024-07-18");
    assert_int_equal(u->tokens_in, 19);
    assert_int_equal(u->tokens_out, 10);
    assert_int_equal(u->tokens_cached, 0);
}

static void check_anthropic(const tg_usage_t *u)
{
    assert_int_equal(u->known, 1);
    assert_string_equal(u->model, "claude-sonnet-4-20250514");
    assert_int_equal(u->tokens_in, 25);
    assert_int_equal(u->tokens_out, 25);
    assert_int_equal(u->tokens_cached, 7);
    assert_int_equal(u->cache_write, 3);
}

/* Feeds the stream whole, byte by byte, and in every two-piece split. */
static void run_stream(const char *in, size_t n, int anthropic, void (*check)(const tg_usage_t *))
{
    for (size_t cut = 0; cut <= n + 1; cut++) {
        struct ctx c = {.anthropic = anthropic};
        tg_usage_init(&c.u);
        tg_sse_t s;
        tg_sse_init(&s, 4096, on_event, &c);
        if (cut == n + 1) {
            for (size_t i = 0; i < n; i++)
                tg_sse_feed(&s, in + i, 1);
        } else {
            tg_sse_feed(&s, in, cut);
            tg_sse_feed(&s, in + cut, n - cut);
        }
        assert_int_equal(tg_sse_skipped(&s), 0);
        tg_sse_free(&s);
        check(&c.u);
    }
}

static void test_openai_stream(void **state)
{
    (void)state;
    run_stream(openai_stream, sizeof openai_stream - 1, 0, check_openai);
}

static void test_openai_stream_without_usage(void **state)
{
    (void)state;
    tg_usage_t u;
    tg_usage_init(&u);
    tg_usage_openai_event(S("{\"model\":\"gpt-4o\",\"choices\":[],\"usage\":null}"), &u);
    tg_usage_openai_event(S("[DONE]"), &u);
    tg_usage_openai_event(S("{not json"), &u);
    assert_int_equal(u.known, 0);
    assert_string_equal(u.model, "gpt-4o");
}

static void test_openai_responses_stream(void **state)
{
    (void)state;
    tg_usage_t u;
    tg_usage_init(&u);
    tg_usage_openai_event(S("{\"type\":\"response.created\",\"sequence_number\":0,\"response\":{"
                            "\"id\":\"resp_1\",\"model\":\"gpt-4.1-mini\",\"usage\":null}}"),
                          &u);
    assert_int_equal(u.known, 0);
    assert_string_equal(u.model, "gpt-4.1-mini");
    tg_usage_openai_event(S("{\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}"), &u);
    tg_usage_openai_event(S("{\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\","
                            "\"model\":\"gpt-4.1-mini\",\"usage\":{\"input_tokens\":36,"
                            "\"input_tokens_details\":{\"cached_tokens\":2},"
                            "\"output_tokens\":87,\"total_tokens\":123}}}"),
                          &u);
    assert_int_equal(u.known, 1);
    assert_int_equal(u.tokens_in, 36);
    assert_int_equal(u.tokens_out, 87);
    assert_int_equal(u.tokens_cached, 2);
}

static void test_anthropic_json(void **state)
{
    (void)state;
    tg_usage_t u;
    tg_usage_init(&u);
    assert_int_equal(
        tg_usage_anthropic_json(S("{\"id\":\"msg_1\",\"type\":\"message\",\"role\":"
                                  "\"assistant\",\"model\":\"claude-3-5-haiku-latest\","
                                  "\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],"
                                  "\"usage\":{\"input_tokens\":10,\"output_tokens\":"
                                  "4,\"cache_creation_input_tokens\":100,"
                                  "\"cache_read_input_tokens\":50}}"),
                                &u),
        0);
    assert_int_equal(u.known, 1);
    assert_string_equal(u.model, "claude-3-5-haiku-latest");
    assert_int_equal(u.tokens_in, 10);
    assert_int_equal(u.tokens_out, 4);
    assert_int_equal(u.tokens_cached, 50);
    assert_int_equal(u.cache_write, 100);

    tg_usage_init(&u);
    assert_int_equal(tg_usage_anthropic_json(S("{\"type\":\"error\",\"error\":{}}"), &u), 0);
    assert_int_equal(u.known, 0);
    assert_int_equal(tg_usage_anthropic_json(S("{\"usage\":"), &u), -1);
    assert_int_equal(u.known, 0);
}

static void test_anthropic_stream(void **state)
{
    (void)state;
    run_stream(anthropic_stream, sizeof anthropic_stream - 1, 1, check_anthropic);
}

static void test_anthropic_events_edge(void **state)
{
    (void)state;
    tg_usage_t u;
    tg_usage_init(&u);
    /* Provisional output count in message_start is not taken. */
    tg_usage_anthropic_event(S("message_start"),
                             S("{\"type\":\"message_start\",\"message\":{\"model\":\"c\",\"usage\":"
                               "{\"input_tokens\":5,\"output_tokens\":1}}}"),
                             &u);
    assert_int_equal(u.known, 1);
    assert_int_equal(u.tokens_in, 5);
    assert_int_equal(u.tokens_out, 0);
    /* message_delta sets, never adds. */
    tg_usage_anthropic_event(S("message_delta"), S("{\"usage\":{\"output_tokens\":7}}"), &u);
    tg_usage_anthropic_event(S("message_delta"), S("{\"usage\":{\"output_tokens\":9}}"), &u);
    assert_int_equal(u.tokens_out, 9);
    assert_int_equal(u.tokens_in, 5);
    /* Event type from data when no event name; garbage ignored. */
    tg_usage_anthropic_event("", 0,
                             S("{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":"
                               "12}}"),
                             &u);
    assert_int_equal(u.tokens_out, 12);
    tg_usage_anthropic_event(S("message_delta"), S("{\"usage\":"), &u);
    tg_usage_anthropic_event(S("message_delta"), S("{\"usage\":{\"output_tokens\":\"x\"}}"), &u);
    tg_usage_anthropic_event("", 0, S("{\"type\":5}"), &u);
    tg_usage_anthropic_event("", 0, S("[]"), &u);
    assert_int_equal(u.tokens_out, 12);

    tg_usage_init(&u);
    tg_usage_anthropic_event(S("message_start"), S("{\"message\":null}"), &u);
    tg_usage_anthropic_event(S("message_stop"), S("{\"type\":\"message_stop\"}"), &u);
    assert_int_equal(u.known, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_chat),
        cmocka_unit_test(test_openai_completions_and_embeddings),
        cmocka_unit_test(test_openai_responses),
        cmocka_unit_test(test_openai_missing_and_bad),
        cmocka_unit_test(test_huge_numbers),
        cmocka_unit_test(test_huge_body),
        cmocka_unit_test(test_openai_stream),
        cmocka_unit_test(test_openai_stream_without_usage),
        cmocka_unit_test(test_openai_responses_stream),
        cmocka_unit_test(test_anthropic_json),
        cmocka_unit_test(test_anthropic_stream),
        cmocka_unit_test(test_anthropic_events_edge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
