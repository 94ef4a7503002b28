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

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tg_usage {
    char model[128]; /* NUL-terminated, truncated if longer */
    int64_t tokens_in, tokens_out, tokens_cached, cache_write;
    int known; /* 1 once a usage object was seen */
} tg_usage_t;

void tg_usage_init(tg_usage_t *u);

/* Whole JSON response bodies. 0 if the body is a JSON object (known set only if it had a
 * usage object), -1 on bad JSON or a non-object; u is left untouched on -1. */
int tg_usage_openai_json(const char *body, size_t len, tg_usage_t *u);
int tg_usage_anthropic_json(const char *body, size_t len, tg_usage_t *u);

/* The same from an already parsed object (root may be any JSON value; only an object
 * with the fields above counts). */
void tg_usage_openai_root(json_t *root, tg_usage_t *u);
void tg_usage_anthropic_root(json_t *root, tg_usage_t *u);

/* One SSE event's data. OpenAI: chat/completions chunks (model from any chunk, counts from
 * a chunk whose "usage" is non-null) and Responses API events ({"response":{"model",
 * "usage"}} as in response.completed); "[DONE]" and bad JSON are ignored. */
void tg_usage_openai_event(const char *data, size_t len, tg_usage_t *u);
/* Anthropic: message_start gives model and input/cache counts (its output_tokens is
 * provisional and ignored); message_delta gives the final cumulative output_tokens. When
 * elen is 0 the event type is taken from the data's "type". */
void tg_usage_anthropic_event(const char *event, size_t elen, const char *data, size_t dlen,
                              tg_usage_t *u);

#endif
