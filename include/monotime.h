/*
 * monotime.h - time on the monotonic clock, for deadlines and durations.
 *
 * Every deadline in enchufe is an absolute point on CLOCK_MONOTONIC, so a
 * wall-clock jump (NTP, a user setting the date) can neither shorten nor
 * stretch a timeout. A deadline of 0 means "none".
 */
#ifndef ENCHUFE_MONOTIME_H
#define ENCHUFE_MONOTIME_H

#include <stdint.h>
#include <time.h>

/* Milliseconds and nanoseconds since an arbitrary fixed point. */
long long monotime_ms(void);
uint64_t monotime_ns(void);

/* Now plus timeout_ms, in milliseconds; 0 (no deadline) when timeout_ms
 * is 0. */
long long monotime_deadline(int timeout_ms);

/* Now plus ms, as a timespec for pthread_cond_timedwait on a condition
 * variable set to CLOCK_MONOTONIC. */
struct timespec monotime_timespec_after(int ms);

#endif
