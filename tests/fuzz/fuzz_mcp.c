/* libFuzzer target: MCP JSON-RPC reading in the exchange (src/meter/exchange.c): requests
 * and batches (methods, ids, tools/call names), the JSON-RPC refusal built from them, and
 * answers as JSON or SSE (results, errors, tool errors), cut at arbitrary places. Input
 * layout and checks: xchg.h. */
#include "xchg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {"/mcp", "/mcp/sse"};
    return xchg_one(data, size, TG_ROUTE_MCP, paths, 2);
}
