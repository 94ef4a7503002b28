/* The reader-writer lock of a snapshot that workers read on every request and a refresh
 * thread swaps (keyring, policy, price book). */
#ifndef TG_UTIL_RWLOCK_H
#define TG_UTIL_RWLOCK_H

#include <pthread.h>

/* Writers first: glibc's default prefers readers, and a steady stream of them (busy workers)
 * can keep the refresh thread from ever swapping its snapshot in, so a revoked key or a new
 * price would wait behind the load (a unit test with four spinning readers took 9 s for 300
 * swaps). With writers first, a reader must never take the same lock twice (it would wait
 * behind a queued writer that waits for it): every read section here is flat. */
static inline void tg_rwlock_init(pthread_rwlock_t *lock)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(lock, &a);
    pthread_rwlockattr_destroy(&a);
}

#endif
