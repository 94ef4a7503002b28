/* bench/proxy/burner.c: a stand-in for a proxy's background work, for bench/proxy/unpinned.sh
 * BURN="BUSY_MS PERIOD_MS": spins BUSY_MS of every PERIOD_MS, one thread, normal priority,
 * until killed. Run beside nginx, it shows what a second busy thread (tollgate's writer)
 * costs a single-threaded proxy on a small machine, apart from its own CPU time. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    long busy = argc == 3 ? atol(argv[1]) : -1, period = argc == 3 ? atol(argv[2]) : -1;
    if (busy < 0 || period <= 0 || busy > period) {
        fprintf(stderr, "usage: burner BUSY_MS PERIOD_MS (0 <= BUSY_MS <= PERIOD_MS)\n");
        return 2;
    }
    volatile unsigned long x = 0;
    for (;;) {
        long long start = now_us();
        while (now_us() - start < busy * 1000LL)
            for (int i = 0; i < 1000; i++)
                x += (unsigned long)i;
        if (period > busy) usleep((useconds_t)((period - busy) * 1000));
    }
}
