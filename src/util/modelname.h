/* Model names as clients and providers spell them, reduced to the name a price or a limit
 * is written for.
 *
 * Names compare case-insensitively (ASCII): `GPT-4o-mini` is `gpt-4o-mini`. A provider's
 * variant of a model falls back to the model's own name when nothing is written for the
 * variant itself; tg_modelname_base gives the next shorter name to try:
 *   NAME@ANY, NAME:ANY   -> NAME  (Vertex `claude-3-5-sonnet@20240620`, Bedrock `...-v1:0`)
 *   NAME-YYYY-MM-DD      -> NAME  (OpenAI snapshots `gpt-4o-mini-2024-07-18`)
 *   NAME-YYYYMMDD        -> NAME  (Anthropic snapshots `claude-3-5-sonnet-20241022`)
 * so `claude-3-5-sonnet-20240620@x` tries itself, `claude-3-5-sonnet-20240620`, then
 * `claude-3-5-sonnet`. A caller tries the name, then each base in turn, and stops at the
 * first that has a row: a variant with its own price or limit keeps it. */
#ifndef TG_UTIL_MODELNAME_H
#define TG_UTIL_MODELNAME_H

#include <stddef.h>

/* How many names a lookup tries at most: the name and up to this many bases less one. */
#define TG_MODELNAME_TRIES 4

/* The length of the base of name[0..len), or 0 when it has none. */
size_t tg_modelname_base(const char *name, size_t len);

/* name[0..len) lowercased into out (cap >= 1 bytes, NUL-terminated, truncated to cap - 1).
 * Returns the length written. */
size_t tg_modelname_fold(const char *name, size_t len, char *out, size_t cap);

#endif
