/* Usage event helpers: see event.h. */
#include "types/event.h"

#include <stdatomic.h>
#include <string.h>
#include <openssl/rand.h>

const char *tg_outcome_name(tg_outcome_t o)
{
    switch (o) {
    case TG_OUTCOME_BILLABLE: return "billable";
    case TG_OUTCOME_FAILED: return "failed";
    case TG_OUTCOME_REJECTED: return "rejected";
    }
    return "unknown";
}

const char *tg_body_out_name(int v)
{
    switch (v) {
    case TG_BODY_WHOLE: return "";
    case TG_BODY_CUT: return "cut";
    case TG_BODY_CODED: return "coded";
    case TG_BODY_DECODE_ERROR: return "decode_error";
    case TG_BODY_DECODE_CAP: return "decode_cap";
    }
    return "unknown";
}

const char *tg_bodies_state_name(int v)
{
    switch (v) {
    case TG_BODIES_NOT_KEPT: return "";
    case TG_BODIES_SEALED: return "sealed";
    case TG_BODIES_DROPPED_SPOOLED: return "dropped_spooled";
    case TG_BODIES_DROPPED: return "dropped";
    }
    return "unknown";
}

#define EPOCH_2020_MS 1577836800000LL
#define LOW_BITS      22
/* The millisecond range an id can hold is 41 bits either side of 2020 (about 1950 to
 * 2089-09-07). An instant outside it (an ingested log's year 9999, a wrong clock) takes
 * the nearest end: shifted as is it would wrap into another time (2095 as a negative id,
 * 9999 as 2055). The top end is the last millisecond of August 2089, the last month whose
 * PostgreSQL partition has an upper bound that fits in an id (tg_usage_partition). The
 * event keeps its ts_us; its id stays unique by the low bits and the store's retry. */
#define ID_MAX_MS 2198534399999LL /* 2089-08-31T23:59:59.999Z */
#define ID_MIN_MS (-(1LL << 41))

static atomic_uint_fast32_t id_counter;
static atomic_int id_seeded;

int64_t tg_event_new_id(int64_t wall_us)
{
    if (!atomic_load_explicit(&id_seeded, memory_order_acquire)) {
        uint32_t salt = 0;
        RAND_bytes((unsigned char *)&salt, sizeof salt);
        uint_fast32_t zero = 0;
        atomic_compare_exchange_strong(&id_counter, &zero, salt);
        atomic_store_explicit(&id_seeded, 1, memory_order_release);
    }
    int64_t ms = wall_us / 1000 - EPOCH_2020_MS;
    if (ms > ID_MAX_MS) ms = ID_MAX_MS;
    if (ms < ID_MIN_MS) ms = ID_MIN_MS;
    uint32_t low = (uint32_t)atomic_fetch_add(&id_counter, 1) & ((1u << LOW_BITS) - 1);
    return ms * ((int64_t)1 << LOW_BITS) + (int64_t)low; /* a shift of a negative is UB */
}

void tg_event_str(char *dst, size_t cap, const char *src, size_t len)
{
    if (!src) len = 0;
    if (len >= cap) len = cap - 1;
    if (len) memcpy(dst, src, len);
    dst[len] = '\0';
}
