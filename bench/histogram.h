/*
 * histogram.h - a log-linear latency histogram (the HdrHistogram idea):
 * exact below 256 ns, then 128 buckets per power of two, so any recorded
 * value is reported within 1% of itself, from nanoseconds to minutes, in
 * a fixed 36 KiB. Mean, standard deviation and max are kept exactly.
 */
#ifndef ENCHUFE_BENCH_HISTOGRAM_H
#define ENCHUFE_BENCH_HISTOGRAM_H

#include <stdint.h>

#define HIST_BUCKETS 4608 /* covers values up to 2^42 ns, about 73 minutes */

struct histogram {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
    double sum;
    double sum_sq;
};

void hist_reset(struct histogram *h);
void hist_record(struct histogram *h, uint64_t value);
/* Adds every sample of src to dst (merging per-thread histograms). */
void hist_merge(struct histogram *dst, const struct histogram *src);

/* The value at percentile p (0-100]: the smallest recorded value such
 * that p% of the samples are at or below it, within bucket precision. */
uint64_t hist_percentile(const struct histogram *h, double p);
double hist_mean(const struct histogram *h);
double hist_stdev(const struct histogram *h);

#endif
