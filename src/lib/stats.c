/* SPDX-License-Identifier: MIT */
/*
 * Statistics helpers: histogram bucketing, percentiles and copies of the
 * atomic counters into the public value struct.
 */
#include "stats.h"

#include <string.h>

unsigned uc__hist_bucket(uint64_t us)
{
    /* Bucket i holds [2^(i-1), 2^i) µs: the bit length of the duration. */
    unsigned b = 0;
    while (us != 0 && b < UC_HIST_BUCKETS - 1) {
        us >>= 1;
        b++;
    }
    return b;
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void uc__stats_copy(const uc__stats_t *st, uc_stats_t *out)
{
    uc__stats_t *s = (uc__stats_t *)st; /* atomic_load takes non-const */

    memset(out, 0, sizeof(*out));
#define COPY(name, help) out->name = LOAD(s->name);
    UC_STATS_COUNTERS(COPY)
#undef COPY
    for (unsigned i = 0; i < UC_HIST_BUCKETS; i++) {
        out->get_us[i] = LOAD(s->get_us[i]);
        out->set_us[i] = LOAD(s->set_us[i]);
    }
}

double uc_stats_hit_rate(const uc_stats_t *st)
{
    uint64_t total = st->hits + st->misses;
    return total == 0 ? 0.0 : (double)st->hits / (double)total;
}

uint64_t uc_stats_percentile_us(const uint64_t *buckets, double p)
{
    uint64_t total = 0, seen = 0, rank;

    for (unsigned i = 0; i < UC_HIST_BUCKETS; i++) {
        total += buckets[i];
    }
    if (total == 0) {
        return 0;
    }
    if (p <= 0.0) {
        p = 0.0;
    }
    if (p > 1.0) {
        p = 1.0;
    }
    /* The smallest bucket whose cumulative count reaches ceil(p * total). */
    rank = (uint64_t)((double)total * p);
    if ((double)rank < (double)total * p || rank == 0) {
        rank++;
    }
    for (unsigned i = 0; i < UC_HIST_BUCKETS; i++) {
        seen += buckets[i];
        if (seen >= rank) {
            return i == 0 ? 1 : (uint64_t)1 << i;
        }
    }
    return (uint64_t)1 << (UC_HIST_BUCKETS - 1);
}
