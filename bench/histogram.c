/*
 * histogram.c - log-linear histogram (see histogram.h).
 */
#include "histogram.h"

#include <math.h>
#include <string.h>

#define EXACT 256 /* values below this get a bucket each */
#define HALF 128  /* buckets per power of two above that */

static unsigned bucket_of(uint64_t v)
{
    if (v < EXACT)
        return (unsigned)v;
    int msb = 63 - __builtin_clzll(v); /* >= 8 */
    int shift = msb - 7;               /* keep the top 8 bits */
    unsigned idx = EXACT + (unsigned)(shift - 1) * HALF + (unsigned)((v >> shift) - HALF);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The middle of the values a bucket holds. */
static uint64_t value_of(unsigned idx)
{
    if (idx < EXACT)
        return idx;
    unsigned shift = (idx - EXACT) / HALF + 1;
    uint64_t low = ((uint64_t)((idx - EXACT) % HALF) + HALF) << shift;
    return low + ((1ULL << shift) >> 1);
}

void hist_reset(struct histogram *h)
{
    memset(h, 0, sizeof *h);
}

void hist_record(struct histogram *h, uint64_t value)
{
    h->counts[bucket_of(value)]++;
    h->total++;
    if (value > h->max)
        h->max = value;
    h->sum += (double)value;
    h->sum_sq += (double)value * (double)value;
}

void hist_merge(struct histogram *dst, const struct histogram *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->sum += src->sum;
    dst->sum_sq += src->sum_sq;
}

uint64_t hist_percentile(const struct histogram *h, double p)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = value_of(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double hist_mean(const struct histogram *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}

double hist_stdev(const struct histogram *h)
{
    if (h->total < 2)
        return 0.0;
    double mean = hist_mean(h);
    double var = h->sum_sq / (double)h->total - mean * mean;
    return var > 0 ? sqrt(var) : 0.0;
}
