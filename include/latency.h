/*
 * latency.h - a histogram of request service times, kept per worker.
 *
 * Service time runs from the first byte of a request read to the last
 * byte of its answer written. Each worker counts into its own buckets
 * with relaxed atomic adds (no lock, no shared cache line on the hot
 * path); a scrape or a stats request sums the workers' buckets. The
 * bucket bounds are fixed, so sums of histograms from different moments
 * subtract cleanly (for rates and for a percentile over an interval), and
 * they are what Prometheus gets as `le` labels.
 */
#ifndef ENCHUFE_LATENCY_H
#define ENCHUFE_LATENCY_H

#include <stdatomic.h>
#include <stdint.h>

/* Upper bounds in seconds, from 25 us to 30 s; a last bucket takes the rest. */
#define LATENCY_BOUNDS 34
extern const double latency_bounds_s[LATENCY_BOUNDS];

struct latency {
    atomic_uint_least64_t buckets[LATENCY_BOUNDS + 1]; /* the last one: beyond 30 s */
    atomic_uint_least64_t sum_ns;
};

/* A plain copy to add up and read. */
struct latency_sum {
    uint64_t buckets[LATENCY_BOUNDS + 1]; /* per bucket, not cumulative */
    uint64_t count;
    uint64_t sum_ns;
};

void latency_record(struct latency *l, uint64_t ns);

/* Adds a worker's histogram into a sum. */
void latency_add(struct latency_sum *to, struct latency *from);

/* The q-quantile (0..1) of a sum, in seconds, interpolated within its
 * bucket as Prometheus's histogram_quantile does; 0 when empty. */
double latency_quantile(const struct latency_sum *s, double q);

/* b - a, bucket by bucket: what happened between two sums. */
void latency_diff(struct latency_sum *out, const struct latency_sum *b, const struct latency_sum *a);

#endif
