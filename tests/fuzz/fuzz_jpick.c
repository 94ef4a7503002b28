/* libFuzzer target: the JSON member picker (src/util/jpick.c).
 *
 * Input: bytes 0-1 seed the piece sizes, the rest is the document. Three readings must
 * agree: the picker on the whole document, the picker fed in pieces (same result and same
 * values), and jansson: a document (without a raw NUL byte) jansson accepts must be accepted with
 * the same values at every path (the picker may accept more: yajl's UTF-8 check is looser, see
 * jpick.h). */
#include <jansson.h>

#include "fuzz.h"
#include "util/jpick.h"

/* Paths like the meter's (usage.c, exchange.c): shared prefixes, every depth. */
static const tg_jpath_t paths[] = {
    {{"model"}},
    {{"usage"}},
    {{"usage", "prompt_tokens"}},
    {{"usage", "completion_tokens"}},
    {{"usage", "prompt_tokens_details", "cached_tokens"}},
    {{"usage", "a", "b", "c"}},
    {{"stream"}},
    {{"stream_options", "include_usage"}},
    {{"choices"}},
    {{"a"}},
    {{"a", "a"}},
    {{""}},
};
#define NPATHS (sizeof paths / sizeof paths[0])
static tg_jpick_spec_t spec = TG_JPICK_SPEC(paths);

static void same_values(const tg_jpick_t *a, const tg_jpick_t *b)
{
    for (size_t i = 0; i < NPATHS; i++) {
        const tg_jval_t *x = tg_jpick_get(a, i), *y = tg_jpick_get(b, i);
        FZ_CHECK(x->type == y->type);
        if (x->type == TG_JT_INT || x->type == TG_JT_REAL) FZ_CHECK(x->i == y->i);
        if (x->type == TG_JT_OBJECT || x->type == TG_JT_ARRAY) FZ_CHECK(x->n == y->n);
        if (x->type == TG_JT_STRING) FZ_CHECK(strcmp(x->s, y->s) == 0);
    }
}

static void like_jansson(const tg_jpick_t *pk, json_t *root)
{
    for (size_t i = 0; i < NPATHS; i++) {
        json_t *j = root;
        for (size_t d = 0; paths[i].key[d] && j; d++)
            j = json_is_object(j) ? json_object_get(j, paths[i].key[d]) : NULL;
        const tg_jval_t *v = tg_jpick_get(pk, i);
        switch (j ? json_typeof(j) : (json_type)-1) {
        case JSON_OBJECT: FZ_CHECK(v->type == TG_JT_OBJECT); break;
        case JSON_ARRAY:
            FZ_CHECK(v->type == TG_JT_ARRAY);
            FZ_CHECK(v->n == json_array_size(j));
            break;
        case JSON_STRING: {
            FZ_CHECK(v->type == TG_JT_STRING);
            size_t n = strnlen(json_string_value(j), TG_JPICK_STR - 1);
            FZ_CHECK(strlen(v->s) == n && memcmp(v->s, json_string_value(j), n) == 0);
            break;
        }
        case JSON_INTEGER:
            FZ_CHECK(v->type == TG_JT_INT);
            FZ_CHECK(v->i == (int64_t)json_integer_value(j));
            break;
        case JSON_REAL: FZ_CHECK(v->type == TG_JT_REAL); break;
        case JSON_TRUE: FZ_CHECK(v->type == TG_JT_TRUE); break;
        case JSON_FALSE: FZ_CHECK(v->type == TG_JT_FALSE); break;
        case JSON_NULL: FZ_CHECK(v->type == TG_JT_NULL); break;
        default: FZ_CHECK(v->type == TG_JT_ABSENT); break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    fz_split_t sp;
    fz_split_init(&sp, (uint32_t)data[0] << 8 | data[1]);
    const char *p = (const char *)data + 2;
    size_t n = size - 2;

    static tg_jpick_t whole, split; /* large (arena): not on the stack */
    tg_jpick_init(&whole);
    tg_jpick_init(&split);
    int rw = tg_jpick_doc(&whole, &spec, p, n);

    int rs = tg_jpick_begin(&split, &spec);
    FZ_CHECK(rs == 0);
    int failed = 0;
    for (size_t off = 0; off < n;) {
        size_t k = fz_split_next(&sp, n - off);
        if (tg_jpick_feed(&split, p + off, k) != 0)
            failed = 1;
        else
            FZ_CHECK(!failed); /* once unreadable, always unreadable */
        off += k;
    }
    rs = tg_jpick_end(&split);
    if (failed) FZ_CHECK(rs != 0);
    FZ_CHECK(rw == rs);
    if (rw == 0) same_values(&whole, &split);

    /* jansson stops at a raw NUL byte as at the end of input ("1\0" loads): no valid
     * document holds one, so such inputs are left to the first two readings. */
    json_error_t jerr;
    json_t *root =
        memchr(p, '\0', n) ? NULL : json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (root) {
        FZ_CHECK(rw == 0);
        like_jansson(&whole, root);
        json_decref(root);
    }
    tg_jpick_free(&whole);
    tg_jpick_free(&split);
    return 0;
}
