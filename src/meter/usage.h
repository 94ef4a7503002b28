/* Token usage extraction from OpenAI and Anthropic responses, JSON and streamed.
 *
 * Counts are *set* from the provider's usage object, never accumulated: every provider
 * reports cumulative totals, so a repeated or late usage report must not double-count.
 * known stays 0 until a usage object is actually seen, so a response we could not read is
 * recorded as "tokens unknown" rather than as zero tokens.
 *
 * Where each field comes from (all under the response's "usage" object):
 *   OpenAI chat, completions, embeddings: prompt_tokens -> tokens_in,
 *     completion_tokens -> tokens_out (absent for embeddings: 0),
 *     prompt_tokens_details.cached_tokens -> tokens_cached.
 *   OpenAI responses: input_tokens -> tokens_in, output_tokens -> tokens_out,
 *     input_tokens_details.cached_tokens -> tokens_cached.
 *   Anthropic: input_tokens -> tokens_in, output_tokens -> tokens_out,
 *     cache_read_input_tokens -> tokens_cached, cache_creation_input_tokens -> cache_write.
 */
#ifndef TG_METER_USAGE_H
#define TG_METER_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "util/jpick.h"

typedef struct tg_usage {
    char model[128]; /* NUL-terminated, truncated if longer */
    int64_t tokens_in, tokens_out, tokens_cached, cache_write;
    int known; /* 1 once a usage object was seen */
} tg_usage_t;

typedef enum {
    TG_USAGE_OPENAI = 0,
    TG_USAGE_ANTHROPIC,
} tg_usage_api_t;

void tg_usage_init(tg_usage_t *u);

/* A whole JSON answer read as it arrives: tg_usage_begin, then tg_jpick_feed with each
 * piece and tg_jpick_end; when that returned 0, tg_usage_answer sets the model and counts
 * (known only if the answer had a usage object). tg_usage_answer returns 0, or -1 when the
 * answer is not a JSON object (u untouched). Only top-level members count: a "usage" nested
 * anywhere else (the Responses API echoes the client's metadata) is not the provider's. */
int tg_usage_begin(tg_jpick_t *pk, tg_usage_api_t api);
int tg_usage_answer(const tg_jpick_t *pk, tg_usage_api_t api, tg_usage_t *u);

/* The same for a body held whole: 0, or -1 on bad JSON or a non-object (u untouched). */
int tg_usage_openai_json(const char *body, size_t len, tg_usage_t *u);
int tg_usage_anthropic_json(const char *body, size_t len, tg_usage_t *u);

/* What tg_usage_openai_event saw besides the counts. */
#define TG_USAGE_EV_USAGE_CHUNK 1 /* a usage object and "choices": [] (what include_usage adds) */
#define TG_USAGE_EV_USAGE_NULL  2 /* a top-level "usage": null */

/* One SSE event's data. OpenAI: chat/completions chunks (model from any chunk, counts from
 * a chunk whose "usage" is non-null) and Responses API events ({"response":{"model",
 * "usage"}} as in response.completed). Returns the TG_USAGE_EV_ flags, 0 for "[DONE]", -1
 * when the data is not a JSON object. */
int tg_usage_openai_event(const char *data, size_t len, tg_usage_t *u);
/* Anthropic: message_start gives model and input/cache counts (its output_tokens is
 * provisional and ignored); message_delta gives the final cumulative output_tokens. When
 * elen is 0 the event type is taken from the data's "type". Returns 0, -1 when the data is
 * not a JSON object. */
int tg_usage_anthropic_event(const char *event, size_t elen, const char *data, size_t dlen,
                             tg_usage_t *u);

#endif
