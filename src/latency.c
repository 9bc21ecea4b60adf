/*
 * latency.c - service-time histograms (see latency.h).
 */
#include "latency.h"

#include <stddef.h>

const double latency_bounds_s[LATENCY_BOUNDS] = {
    25e-6, 50e-6, 75e-6, 100e-6, 150e-6, 200e-6, 300e-6, 500e-6, 750e-6,
    1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3, 7.5e-3, 10e-3, 15e-3, 20e-3, 30e-3, 50e-3, 75e-3,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30,
};

/* The first bucket whose bound is at or above ns (binary search). */
static size_t bucket_of(uint64_t ns)
{
    double s = (double)ns / 1e9;
    size_t lo = 0, hi = LATENCY_BOUNDS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s <= latency_bounds_s[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void latency_record(struct latency *l, uint64_t ns)
{
    atomic_fetch_add_explicit(&l->buckets[bucket_of(ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->sum_ns, ns, memory_order_relaxed);
}

void latency_add(struct latency_sum *to, struct latency *from)
{
    for (size_t i = 0; i <= LATENCY_BOUNDS; i++) {
        uint64_t n = atomic_load_explicit(&from->buckets[i], memory_order_relaxed);
        to->buckets[i] += n;
        to->count += n;
    }
    to->sum_ns += atomic_load_explicit(&from->sum_ns, memory_order_relaxed);
}

double latency_quantile(const struct latency_sum *s, double q)
{
    if (s->count == 0)
        return 0;
    double rank = q * (double)s->count, below = 0;
    for (size_t i = 0; i <= LATENCY_BOUNDS; i++) {
        double n = (double)s->buckets[i];
        if (below + n >= rank && n > 0) {
            if (i == LATENCY_BOUNDS) /* beyond the last bound: say the bound */
                return latency_bounds_s[LATENCY_BOUNDS - 1];
            double lower = i ? latency_bounds_s[i - 1] : 0, upper = latency_bounds_s[i];
            return lower + (upper - lower) * (rank - below) / n;
        }
        below += n;
    }
    return latency_bounds_s[LATENCY_BOUNDS - 1];
}

void latency_diff(struct latency_sum *out, const struct latency_sum *b, const struct latency_sum *a)
{
    out->count = 0;
    for (size_t i = 0; i <= LATENCY_BOUNDS; i++) {
        out->buckets[i] = b->buckets[i] >= a->buckets[i] ? b->buckets[i] - a->buckets[i] : 0;
        out->count += out->buckets[i];
    }
    out->sum_ns = b->sum_ns >= a->sum_ns ? b->sum_ns - a->sum_ns : 0;
}
