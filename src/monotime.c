/*
 * monotime.c - the monotonic clock (see monotime.h).
 */
#include "monotime.h"

static struct timespec now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

long long monotime_ms(void)
{
    struct timespec t = now();
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

uint64_t monotime_ns(void)
{
    struct timespec t = now();
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

long long monotime_deadline(int timeout_ms)
{
    return timeout_ms > 0 ? monotime_ms() + timeout_ms : 0;
}

struct timespec monotime_timespec_after(int ms)
{
    struct timespec t = now();
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}
