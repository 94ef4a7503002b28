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

#define EPOCH_2020_MS 1577836800000LL
#define LOW_BITS      22

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
    uint32_t low = (uint32_t)atomic_fetch_add(&id_counter, 1) & ((1u << LOW_BITS) - 1);
    return (ms << LOW_BITS) | (int64_t)low;
}

void tg_event_str(char *dst, size_t cap, const char *src, size_t len)
{
    if (!src) len = 0;
    if (len >= cap) len = cap - 1;
    if (len) memcpy(dst, src, len);
    dst[len] = '\0';
}
