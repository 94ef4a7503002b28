/* libFuzzer target: the exchange on AI routes (src/meter/exchange.c): the request reader
 * (model, max tokens, the include_usage rewriting of a streamed OpenAI request) and the
 * answer readers for JSON and SSE, with the stream rewriting, cut at arbitrary places.
 * Input layout and checks: xchg.h. */
#include "xchg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const openai[] = {"/v1/chat/completions", "/v1/completions",
                                         "/v1/embeddings", "/v1/responses", "/v1/models"};
    static const char *const anthropic[] = {"/v1/messages", "/v1/messages/count_tokens"};
    /* Byte 0: the high bit picks the provider, the rest the path. */
    if (size < 1) return 0;
    if (data[0] & 0x80) return xchg_one(data, size, TG_ROUTE_ANTHROPIC, anthropic, 2);
    return xchg_one(data, size, TG_ROUTE_OPENAI, openai, 5);
}
