/* One metered exchange on an AI or MCP route: what the request asks for and what the
 * response reports, read as the bytes pass through the proxy.
 *
 * The connection holds one tg_xchg_t and reuses it for every request on a route of kind
 * openai, anthropic or mcp:
 *   tg_xchg_begin        at the request head (kind, path);
 *   tg_xchg_request      with the whole request body (held by the connection: it is needed
 *                        to admit the request and is at most server.max_body), which reads
 *                        the model, the token estimate, the JSON-RPC messages and tools, and
 *                        may rewrite the body (below);
 *   tg_xchg_response_head, tg_xchg_response_body, tg_xchg_response_end as the response
 *                        arrives; body bytes go out through an emit callback;
 *   tg_xchg_finish       fills the event (model, tokens, JSON-RPC method, tool, and the
 *                        reason that makes a 2xx MCP answer not billable).
 *
 * Pass-through: every response byte is emitted before it is parsed, in the same call, so
 * nothing is held back. The one exception is an OpenAI stream whose request tollgate
 * changed to ask for usage (a streamed chat or completions request without
 * stream_options.include_usage gets `"stream_options":{"include_usage":true}` added). Its
 * events are emitted whole as each ends (an SSE client cannot act on part of an event
 * anyway), minus what the client did not ask for: the extra chunk with `"choices":[]` and
 * the usage, and the `"usage":null` member the upstream then adds to every other chunk. The
 * client receives the bytes it would have received without tollgate. An event larger than
 * the parser's cap ends the rewriting: from there the stream passes untouched.
 *
 * What cannot be read (not JSON, no usage, an event over the cap, a token over the
 * picker's cap) is forwarded untouched all the same; tg_xchg_finish then reports the
 * tokens unknown and sets *unparsed so the caller can count it. An AI JSON answer is read
 * by the member picker (util/jpick.h) piece by piece as it passes, whatever its size: only
 * its top-level "model" and "usage" count, never a member of the same name nested deeper
 * (the Responses API echoes client metadata). Stream events are read only when they carry
 * a usage object (or, once, for the model when the request named none); one AI event is
 * read up to 1 MiB, or up to what an answer may echo of its request when that is more
 * (tg_xchg_set_max_body: the Responses API repeats instructions and tools in the event
 * with the usage). An MCP answer is
 * parsed whole by jansson, up to 4 MiB (one SSE event up to 4 MiB); an MCP answer
 * too large to read is still billed (2xx) and counted as unparsed.
 *
 * Compressed answers (Content-Encoding gzip, deflate, br, zstd, or a list of them): the
 * client gets the upstream's bytes and headers untouched; the readers above get a copy
 * decoded by meter/decode.h, piece by piece, up to a cap on the decoded size. An identity
 * answer never touches the decoder. The request's Accept-Encoding is narrowed to the
 * codings tollgate decodes (tg_xchg_accept_encoding), so a client cannot invite a coding
 * the meter cannot read; a stream tollgate rewrites asks for identity, since compressed
 * bytes cannot be rewritten. A compressed stream that arrives anyway is passed through
 * unrewritten (the client also sees the usage chunk) and still metered from the copy. An
 * answer that cannot be decoded is forwarded all the same: corrupt, truncated or over the
 * cap, it is read as far as it decoded; in a coding tollgate does not know, it is read as
 * it is (a mislabelled JSON answer still counts). tg_xchg_decode_flag names the problem,
 * and a 2xx MCP answer that could not be decoded is billed like one too large to read,
 * never turned into a free "no_result". */
#ifndef TG_METER_EXCHANGE_H
#define TG_METER_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "types/event.h"

typedef struct tg_xchg tg_xchg_t;

/* Response body bytes to send to the client. Returns 0, or -1 to stop emitting (the
 * client is gone). */
typedef int (*tg_xchg_emit_fn)(void *ud, const char *p, size_t n);

tg_xchg_t *tg_xchg_new(void);
void tg_xchg_free(tg_xchg_t *x);

/* A new request on a route of this kind; path without the query string. */
void tg_xchg_begin(tg_xchg_t *x, tg_route_kind_t kind, const char *path, size_t plen);

/* The largest request body a client may send (server.max_body). An answer may echo any
 * of it (the Responses API echoes "instructions"), so one JSON token (a string) of an AI
 * answer is read up to 3 times that (\u escapes) plus 4 MiB, and at least up to
 * TG_JPICK_TOKEN_MAX (64 MiB: base64 audio and images); a client cannot make its own answer
 * unreadable. Kept across requests. */
void tg_xchg_set_max_body(tg_xchg_t *x, size_t max_body);
/* The same cap set directly, in bytes (0: TG_JPICK_TOKEN_MAX). */
void tg_xchg_set_token_max(tg_xchg_t *x, size_t n);

/* The cap on the decoded size of a compressed answer (server.max_decoded_body); 0:
 * TG_XCHG_DECODED_MAX. Never below 3 x max_body + 4 MiB (tg_xchg_set_max_body), what an
 * answer may echo of its request (an echo can be as repetitive as the client likes, so the
 * decoder's allowance per encoded byte, TG_DECODE_RATIO, does not cover it); an answer a
 * client makes large otherwise (many embeddings, logprobs) compresses like text and is
 * covered by that allowance. Kept across requests. */
#define TG_XCHG_DECODED_MAX (64ull << 20)
void tg_xchg_set_decoded_max(tg_xchg_t *x, uint64_t n);

/* The whole request body. When the body was rewritten, *out and *outlen point to the new
 * body (owned by x, valid until the next tg_xchg_begin); else *out is NULL. A body that
 * is not the JSON expected is left as it is (the upstream answers it). */
void tg_xchg_request(tg_xchg_t *x, const char *body, size_t len, const char **out, size_t *outlen);

/* The Accept-Encoding value to send upstream instead of the client's (v, n), after
 * tg_xchg_request: "identity" for a stream tollgate will rewrite, else the client's list
 * narrowed to the codings the meter decodes (meter/decode.h, tg_decode_accept). Writes at
 * most cap bytes (n + 8 suffices) to out and returns the length. */
size_t tg_xchg_accept_encoding(const tg_xchg_t *x, const char *v, size_t n, char *out, size_t cap);

/* 1 when a request's Content-Encoding line names a coding (not empty, not only identity).
 * The meter reads a request body as it is sent: a coded one would hide its model, its
 * max_tokens and the size that bounds its input tokens from admission, and be forwarded to
 * an upstream that may well decode it. A metered route refuses it (415, RFC 9110 §15.5.16);
 * no official SDK compresses requests. */
int tg_xchg_request_coded(const char *v, size_t n);

/* 1 when the request body was not JSON tollgate can read (the route's kind expected it). */
int tg_xchg_request_unreadable(const tg_xchg_t *x);
/* MCP: why the body must be refused with a JSON-RPC -32600/-32602 error, else NULL: a
 * batch nested in a batch (it would hide its calls from the tool rules), a tools/call
 * without an id (no answer could bill it), a tool name holding a NUL (it would be cut
 * where rules and prices compare it). */
const char *tg_xchg_mcp_invalid(const tg_xchg_t *x);
/* 1 when the path is one whose answers carry token usage (chat, completions, embeddings,
 * responses, messages), or an endpoint tollgate does not recognise: the request is
 * reserved against token limits. */
int tg_xchg_counts_tokens(const tg_xchg_t *x);
/* 1 when the request went to an endpoint of an AI route that tollgate does not recognise
 * (any path but chat/completions, completions, embeddings, responses, messages and the
 * free moderations and messages/count_tokens) with a body: admitted on an estimate like
 * any AI call, metered from the answer's usage object when it carries one (read as the
 * route's kind's), else charged on the estimate (the caller's). */
int tg_xchg_unknown_endpoint(const tg_xchg_t *x);
/* 1 when a request to path (has_body: with a body) on a route of this kind goes to an
 * endpoint whose spending tollgate cannot meter, to be refused (trailing slashes do not
 * hide one; the caller asks for each view of the path an upstream may take): one that mints a
 * credential of the upstream's account, or a session, for the client to use directly
 * (OpenAI's realtime/sessions, realtime/client_secrets, realtime/transcription_sessions,
 * realtime/calls: WebRTC media flows straight to the provider), or one that creates work
 * billed later, its results fetched by body-less GETs (OpenAI's batches,
 * fine_tuning/jobs, videos, runs (evals, threads), Anthropic's messages/batches, with a
 * body). An operator
 * who wants them routes them on a route of kind http. */
int tg_xchg_offside(tg_route_kind_t kind, const char *path, size_t plen, int has_body);
/* 1 when the request is a Responses API call with "background": true: its answer is the
 * response queued, without usage, and the usage is only in a later GET that tollgate does
 * not meter (it has no body). Charged on an estimate with the request's bound as output
 * (tg_xchg_estimate_out), flagged, never free. */
int tg_xchg_background(const tg_xchg_t *x);

/* What the request said (after tg_xchg_request). */
const char *tg_xchg_model(const tg_xchg_t *x); /* "" when none */
/* Output tokens the request may produce: the largest of max_tokens, max_completion_tokens
 * and max_output_tokens, times tg_xchg_choices, or -1 when it named none (embeddings: 0). */
int64_t tg_xchg_max_output(const tg_xchg_t *x);
/* How many answers the request asks the upstream to generate, each billed: chat's and
 * completions' (and an unknown endpoint's) "n", or completions' "best_of" when larger;
 * 1 when neither, at most 1024. A default maximum applies to each. */
int64_t tg_xchg_choices(const tg_xchg_t *x);
/* MCP: the tools named by tools/call requests in the body (a batch may hold several). */
size_t tg_xchg_ntools(const tg_xchg_t *x);
const char *tg_xchg_tool(const tg_xchg_t *x, size_t i);

/* The JSON-RPC answer to send instead of forwarding a refused MCP request: one error
 * object per request in the body (an array for a batch), code -32001, with message. Returns
 * the length written to buf (NUL-terminated), 0 if it did not fit. */
size_t tg_xchg_mcp_error(const tg_xchg_t *x, const char *message, char *buf, size_t cap);

/* audit.bodies: hash, for this request (after tg_xchg_begin): tg_xchg_finish sets the
 * event's body_sha_out to the SHA-256 of the answer body in its identity form, taken as the
 * bytes pass (nothing is kept): a compressed answer that is read is hashed as decoded
 * (meter/decode.h), so the hash does not depend on the coding the client accepted; an
 * identity answer as it is sent to the client (a rewritten stream: as rewritten), also
 * after the client left (the drain). What the hash covers (ev->body_out): the whole answer,
 * or the bytes until it was cut, decoding failed or passed its cap, or the bytes as sent in
 * a coding not decoded. No response head (tollgate answered itself, the upstream could not
 * be reached): no hash. */
void tg_xchg_hash_answer(tg_xchg_t *x);

/* audit.bodies: encrypt: tg_xchg_hash_answer, and the bytes hashed are also kept, the first
 * max of them (up to 2 x max bytes of buffer per connection while the answer passes). */
void tg_xchg_keep_answer(tg_xchg_t *x, size_t max);

/* After tg_xchg_finish: the answer kept (owned by x until tg_xchg_drop_answer or the next
 * tg_xchg_begin), *truncated when more came. 1 when kept, 0 when not asked or out of memory. */
int tg_xchg_take_answer(tg_xchg_t *x, const char **p, size_t *n, int *truncated);

/* Frees the kept answer's memory (a connection does not keep max bytes between requests). */
void tg_xchg_drop_answer(tg_xchg_t *x);

/* A Content-Encoding header line of the response, before tg_xchg_response_head (several
 * lines are joined, as RFC 9110 §5.3 allows). */
void tg_xchg_response_coding(tg_xchg_t *x, const char *v, size_t n);
/* The upstream's response status and Content-Type (may be NULL). */
void tg_xchg_response_head(tg_xchg_t *x, int status, const char *ctype, size_t clen);
/* 1 when the response body will be rewritten (see above): its length changes, so the
 * caller must not forward a Content-Length. Valid after tg_xchg_response_head. */
int tg_xchg_rewrites(const tg_xchg_t *x);
/* Response body bytes, in order. Returns -1 once emit failed. */
int tg_xchg_response_body(tg_xchg_t *x, const char *p, size_t n, tg_xchg_emit_fn emit, void *ud);
/* The upstream finished the body: anything held is emitted. */
int tg_xchg_response_end(tg_xchg_t *x, tg_xchg_emit_fn emit, void *ud);

/* The client left during the answer: from now on nothing is emitted (emit is not called),
 * but the answer is still read for its usage as it comes. */
void tg_xchg_client_gone(tg_xchg_t *x);
/* Output tokens the upstream had sent when its usage did not come (a background call's:
 * its max tokens, or -1 when it named none, for the caller's default): on a stream, one
 * per event read that carries text (an unnamed event other than [DONE], as OpenAI's
 * chunks; a named one ending in _delta or .delta, as Anthropic's content_block_delta); on
 * a JSON answer one per 4 bytes read (decoded); at most the request's max tokens when it
 * named one. What the upstream sent after the client left counts: the provider generated
 * and bills it (a client that leaves at once must not make a long answer cost what one
 * event did). After a
 * client left an Anthropic stream before its final count (message_delta), tg_xchg_finish
 * reports the output tokens unknown. */
int64_t tg_xchg_estimate_out(const tg_xchg_t *x);

/* Fills ev: model (the one the upstream reports, else the request's), tokens (or
 * TG_TOKENS_UNKNOWN), rpc_method and tool (MCP), and for a 2xx MCP response that is not a
 * success the reason ("tool_error", "rpc_error", "no_result"), or for one where some of a
 * batch's requests got a result and others did not "partial:OK/N" (OK results of N
 * requests; tg_xchg_partial). *unparsed = 1 when a response that should have carried
 * usage or a JSON-RPC result could not be read. */
void tg_xchg_finish(tg_xchg_t *x, tg_event_t *ev, int *unparsed);

/* After tg_xchg_finish: "" when the answer was identity or decoded whole, else what the
 * event's price_flag records (tg_decode_flag: "coding_unknown", "decode_error",
 * "decode_cap"). */
const char *tg_xchg_decode_flag(const tg_xchg_t *x);
/* After tg_xchg_finish. 1 when the MCP answer was partial: billable for the calls that got
 * a result (its reason says so, it is not a failure). */
int tg_xchg_partial(const tg_xchg_t *x);
/* 1 when tools/call number i (as tg_xchg_tool) is billed: it got a result that is not an
 * error (isError), or the answer was too large to read. */
int tg_xchg_call_billed(const tg_xchg_t *x, size_t i);

#endif
