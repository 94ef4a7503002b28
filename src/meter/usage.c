/* Usage extraction with jansson. Each function looks up only the fields it needs and
 * treats anything of the wrong type as absent, so malformed or unexpected bodies can
 * leave the usage unknown but never crash or corrupt the counts. Negative counts are
 * clamped to 0: a provider bug must not produce a refund. */
#include "meter/usage.h"

#include <jansson.h>
#include <string.h>

void tg_usage_init(tg_usage_t *u)
{
    memset(u, 0, sizeof *u);
}

static void set_model(tg_usage_t *u, json_t *m)
{
    const char *s = json_string_value(m);
    if (!s || !*s) return;
    size_t n = strlen(s);
    if (n >= sizeof u->model) n = sizeof u->model - 1;
    memcpy(u->model, s, n);
    u->model[n] = '\0';
}

/* Sets *dst from obj[key] when that is an integer; leaves it otherwise. */
static void set_int(int64_t *dst, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) return;
    json_int_t x = json_integer_value(v);
    *dst = x < 0 ? 0 : (int64_t)x;
}

static json_t *load(const char *p, size_t len)
{
    json_error_t err;
    json_t *root = json_loadb(p, len, 0, &err);
    if (root && !json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* OpenAI usage object, either naming scheme. The counts are set as a whole: a usage
 * object replaces the previous one, fields it lacks become 0. */
static void openai_usage(tg_usage_t *u, json_t *usage)
{
    if (!json_is_object(usage)) return;
    u->tokens_in = u->tokens_out = u->tokens_cached = u->cache_write = 0;
    set_int(&u->tokens_in, usage, "prompt_tokens");
    set_int(&u->tokens_in, usage, "input_tokens");
    set_int(&u->tokens_out, usage, "completion_tokens");
    set_int(&u->tokens_out, usage, "output_tokens");
    set_int(&u->tokens_cached, json_object_get(usage, "prompt_tokens_details"), "cached_tokens");
    set_int(&u->tokens_cached, json_object_get(usage, "input_tokens_details"), "cached_tokens");
    u->known = 1;
}

void tg_usage_openai_root(json_t *root, tg_usage_t *u)
{
    if (!json_is_object(root)) return;
    set_model(u, json_object_get(root, "model"));
    openai_usage(u, json_object_get(root, "usage"));
    /* Responses API stream events wrap the response object. */
    json_t *resp = json_object_get(root, "response");
    if (json_is_object(resp)) {
        set_model(u, json_object_get(resp, "model"));
        openai_usage(u, json_object_get(resp, "usage"));
    }
}

int tg_usage_openai_json(const char *body, size_t len, tg_usage_t *u)
{
    json_t *root = load(body, len);
    if (!root) return -1;
    tg_usage_openai_root(root, u);
    json_decref(root);
    return 0;
}

void tg_usage_openai_event(const char *data, size_t len, tg_usage_t *u)
{
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) return;
    json_t *root = load(data, len);
    if (!root) return;
    tg_usage_openai_root(root, u);
    json_decref(root);
}

/* Input-side Anthropic counts; output_tokens is handled by the caller because its meaning
 * differs between message_start (provisional) and the final body / message_delta. */
static void anthropic_input(tg_usage_t *u, json_t *usage)
{
    set_int(&u->tokens_in, usage, "input_tokens");
    set_int(&u->tokens_cached, usage, "cache_read_input_tokens");
    set_int(&u->cache_write, usage, "cache_creation_input_tokens");
}

void tg_usage_anthropic_root(json_t *root, tg_usage_t *u)
{
    if (!json_is_object(root)) return;
    set_model(u, json_object_get(root, "model"));
    json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        anthropic_input(u, usage);
        set_int(&u->tokens_out, usage, "output_tokens");
        u->known = 1;
    }
}

int tg_usage_anthropic_json(const char *body, size_t len, tg_usage_t *u)
{
    json_t *root = load(body, len);
    if (!root) return -1;
    tg_usage_anthropic_root(root, u);
    json_decref(root);
    return 0;
}

void tg_usage_anthropic_event(const char *event, size_t elen, const char *data, size_t dlen,
                              tg_usage_t *u)
{
    json_t *root = load(data, dlen);
    if (!root) return;
    const char *type = NULL;
    size_t tlen = 0;
    if (elen) {
        type = event;
        tlen = elen;
    } else if (json_is_string(json_object_get(root, "type"))) {
        type = json_string_value(json_object_get(root, "type"));
        tlen = strlen(type);
    }
    if (tlen == 13 && memcmp(type, "message_start", 13) == 0) {
        json_t *msg = json_object_get(root, "message");
        set_model(u, json_object_get(msg, "model"));
        json_t *usage = json_object_get(msg, "usage");
        if (json_is_object(usage)) {
            anthropic_input(u, usage);
            u->known = 1;
        }
    } else if (tlen == 13 && memcmp(type, "message_delta", 13) == 0) {
        json_t *usage = json_object_get(root, "usage");
        if (json_is_object(usage)) {
            /* Cumulative: newer API versions repeat the input counts here too. */
            anthropic_input(u, usage);
            set_int(&u->tokens_out, usage, "output_tokens");
            u->known = 1;
        }
    }
    json_decref(root);
}
