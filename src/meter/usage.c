/* Usage extraction: the few members it needs are picked out of the JSON (util/jpick.h)
 * as it passes, never building the document. Anything of the wrong type counts as absent,
 * so malformed or unexpected bodies can leave the usage unknown but never crash or corrupt
 * the counts. Negative counts are clamped to 0: a provider bug must not produce a refund. */
#include "meter/usage.h"

#include <string.h>

#include "types/event.h"

/* OpenAI: a usage object's members, in the order usage_group() reads them. */
#define USAGE_GROUP(...)                                                                           \
    {{__VA_ARGS__, NULL}}, {{__VA_ARGS__, "prompt_tokens"}}, {{__VA_ARGS__, "input_tokens"}},      \
        {{__VA_ARGS__, "completion_tokens"}}, {{__VA_ARGS__, "output_tokens"}},                    \
        {{__VA_ARGS__, "prompt_tokens_details", "cached_tokens"}},                                 \
    {                                                                                              \
        {                                                                                          \
            __VA_ARGS__, "input_tokens_details", "cached_tokens"                                   \
        }                                                                                          \
    }
enum { G_USAGE, G_PROMPT, G_INPUT, G_COMPLETION, G_OUTPUT, G_PROMPT_CACHED, G_INPUT_CACHED, G_N };

enum {
    O_MODEL,
    O_CHOICES,
    O_USAGE,                    /* G_N paths */
    O_RESPONSE = O_USAGE + G_N, /* Responses API stream events wrap the response */
    O_R_MODEL,
    O_R_USAGE, /* G_N paths */
    O_N = O_R_USAGE + G_N,
};
static const tg_jpath_t openai_paths[O_N] = {
    [O_MODEL] = {{"model"}},
    [O_CHOICES] = {{"choices"}},
    USAGE_GROUP("usage"),
    [O_RESPONSE] = {{"response"}},
    [O_R_MODEL] = {{"response", "model"}},
    USAGE_GROUP("response", "usage"),
};

enum {
    A_MODEL,
    A_TYPE,
    A_USAGE,
    A_INPUT,
    A_OUTPUT,
    A_CACHE_READ,
    A_CACHE_CREATION,
    A_M_MODEL, /* message_start: {"message": {"model", "usage"}} */
    A_M_USAGE,
    A_M_INPUT,
    A_M_OUTPUT,
    A_M_CACHE_READ,
    A_M_CACHE_CREATION,
    A_N,
};
static const tg_jpath_t anthropic_paths[A_N] = {
    [A_MODEL] = {{"model"}},
    [A_TYPE] = {{"type"}},
    [A_USAGE] = {{"usage"}},
    [A_INPUT] = {{"usage", "input_tokens"}},
    [A_OUTPUT] = {{"usage", "output_tokens"}},
    [A_CACHE_READ] = {{"usage", "cache_read_input_tokens"}},
    [A_CACHE_CREATION] = {{"usage", "cache_creation_input_tokens"}},
    [A_M_MODEL] = {{"message", "model"}},
    [A_M_USAGE] = {{"message", "usage"}},
    [A_M_INPUT] = {{"message", "usage", "input_tokens"}},
    [A_M_OUTPUT] = {{"message", "usage", "output_tokens"}},
    [A_M_CACHE_READ] = {{"message", "usage", "cache_read_input_tokens"}},
    [A_M_CACHE_CREATION] = {{"message", "usage", "cache_creation_input_tokens"}},
};

static tg_jpick_spec_t openai_spec = TG_JPICK_SPEC(openai_paths);
static tg_jpick_spec_t anthropic_spec = TG_JPICK_SPEC(anthropic_paths);

void tg_usage_init(tg_usage_t *u)
{
    memset(u, 0, sizeof *u);
}

static tg_jtype_t type_at(const tg_jpick_t *pk, int i)
{
    return tg_jpick_get(pk, (size_t)i)->type;
}

static void set_model(tg_usage_t *u, const tg_jpick_t *pk, int i)
{
    const tg_jval_t *v = tg_jpick_get(pk, (size_t)i);
    if (v->type != TG_JT_STRING || !v->s[0]) return;
    _Static_assert(sizeof u->model == TG_JPICK_STR, "a picked string fits the model");
    memcpy(u->model, v->s, strlen(v->s) + 1);
}

/* Sets *dst from the value picked at i when that is an integer (negative read as 0, past
 * TG_TOKENS_MAX as TG_TOKENS_MAX); leaves it otherwise. */
static void set_int(int64_t *dst, const tg_jpick_t *pk, int i)
{
    const tg_jval_t *v = tg_jpick_get(pk, (size_t)i);
    if (v->type == TG_JT_INT) *dst = v->i < 0 ? 0 : v->i > TG_TOKENS_MAX ? TG_TOKENS_MAX : v->i;
}

/* An OpenAI usage object, either naming scheme (the paths of USAGE_GROUP from g). The
 * counts are set as a whole: a usage object replaces the previous one, fields it lacks
 * become 0. */
static void usage_group(tg_usage_t *u, const tg_jpick_t *pk, int g)
{
    if (type_at(pk, g + G_USAGE) != TG_JT_OBJECT) return;
    u->tokens_in = u->tokens_out = u->tokens_cached = u->cache_write = 0;
    set_int(&u->tokens_in, pk, g + G_PROMPT);
    set_int(&u->tokens_in, pk, g + G_INPUT);
    set_int(&u->tokens_out, pk, g + G_COMPLETION);
    set_int(&u->tokens_out, pk, g + G_OUTPUT);
    set_int(&u->tokens_cached, pk, g + G_PROMPT_CACHED);
    set_int(&u->tokens_cached, pk, g + G_INPUT_CACHED);
    u->known = 1;
}

static void openai_picked(const tg_jpick_t *pk, tg_usage_t *u)
{
    set_model(u, pk, O_MODEL);
    usage_group(u, pk, O_USAGE);
    set_model(u, pk, O_R_MODEL);
    usage_group(u, pk, O_R_USAGE);
}

/* Input-side Anthropic counts; output_tokens is handled by the caller because its meaning
 * differs between message_start (provisional) and the final body / message_delta. */
static void anthropic_input(tg_usage_t *u, const tg_jpick_t *pk, int input, int read, int creation)
{
    set_int(&u->tokens_in, pk, input);
    set_int(&u->tokens_cached, pk, read);
    set_int(&u->cache_write, pk, creation);
}

/* The top-level usage of a message body or a message_delta event. */
static void anthropic_usage(const tg_jpick_t *pk, tg_usage_t *u)
{
    if (type_at(pk, A_USAGE) != TG_JT_OBJECT) return;
    anthropic_input(u, pk, A_INPUT, A_CACHE_READ, A_CACHE_CREATION);
    set_int(&u->tokens_out, pk, A_OUTPUT);
    u->known = 1;
}

int tg_usage_begin(tg_jpick_t *pk, tg_usage_api_t api)
{
    if (api == TG_USAGE_ANTHROPIC) return tg_jpick_begin(pk, &anthropic_spec);
    return tg_jpick_begin(pk, &openai_spec);
}

int tg_usage_answer(const tg_jpick_t *pk, tg_usage_api_t api, tg_usage_t *u)
{
    if (pk->root != TG_JT_OBJECT) return -1;
    if (api == TG_USAGE_ANTHROPIC) {
        set_model(u, pk, A_MODEL);
        anthropic_usage(pk, u);
    } else {
        openai_picked(pk, u);
    }
    return 0;
}

static int json_body(tg_usage_api_t api, const char *body, size_t len, tg_usage_t *u)
{
    tg_jpick_t pk;
    tg_jpick_init(&pk);
    if (tg_usage_begin(&pk, api) != 0 || tg_jpick_feed(&pk, body, len) != 0 ||
        tg_jpick_end(&pk) != 0) {
        tg_jpick_free(&pk);
        return -1;
    }
    return tg_usage_answer(&pk, api, u);
}

int tg_usage_openai_json(const char *body, size_t len, tg_usage_t *u)
{
    return json_body(TG_USAGE_OPENAI, body, len, u);
}

int tg_usage_anthropic_json(const char *body, size_t len, tg_usage_t *u)
{
    return json_body(TG_USAGE_ANTHROPIC, body, len, u);
}

int tg_usage_openai_event(const char *data, size_t len, tg_usage_t *u)
{
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) return 0;
    tg_jpick_t pk;
    tg_jpick_init(&pk);
    if (tg_jpick_doc(&pk, &openai_spec, data, len) != 0 || pk.root != TG_JT_OBJECT) return -1;
    openai_picked(&pk, u);
    int flags = 0;
    tg_jtype_t usage = type_at(&pk, O_USAGE + G_USAGE);
    if (usage == TG_JT_OBJECT && type_at(&pk, O_CHOICES) == TG_JT_ARRAY &&
        tg_jpick_get(&pk, O_CHOICES)->n == 0)
        flags |= TG_USAGE_EV_USAGE_CHUNK;
    if (usage == TG_JT_NULL) flags |= TG_USAGE_EV_USAGE_NULL;
    return flags;
}

int tg_usage_anthropic_event(const char *event, size_t elen, const char *data, size_t dlen,
                             tg_usage_t *u)
{
    tg_jpick_t pk;
    tg_jpick_init(&pk);
    if (tg_jpick_doc(&pk, &anthropic_spec, data, dlen) != 0 || pk.root != TG_JT_OBJECT) return -1;
    const char *type = event;
    size_t tlen = elen;
    if (!elen && type_at(&pk, A_TYPE) == TG_JT_STRING) {
        type = tg_jpick_get(&pk, A_TYPE)->s;
        tlen = strlen(type);
    }
    if (tlen == 13 && memcmp(type, "message_start", 13) == 0) {
        set_model(u, &pk, A_M_MODEL);
        if (type_at(&pk, A_M_USAGE) == TG_JT_OBJECT) {
            anthropic_input(u, &pk, A_M_INPUT, A_M_CACHE_READ, A_M_CACHE_CREATION);
            u->known = 1;
        }
    } else if (tlen == 13 && memcmp(type, "message_delta", 13) == 0) {
        /* Cumulative: newer API versions repeat the input counts here too. */
        anthropic_usage(&pk, u);
    }
    return 0;
}
