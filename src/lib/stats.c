/* SPDX-License-Identifier: MIT */
/*
 * Statistics helpers: histogram bucketing, percentiles, copies of the
 * atomic counters into the public value struct, and counting one read or
 * store into a handle's totals and a keyspace's counters at once.
 */
#include "stats.h"

#include "cache_int.h"

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

/* ---- counting into a handle ------------------------------------------------
 */

static void count_latency(_Atomic uint64_t *hist, uint64_t t0,
                          const uc__env_t *env)
{
    uint64_t dt = uc__now_us(env) - t0;
    atomic_fetch_add_explicit(&hist[uc__hist_bucket(dt)], 1,
                              memory_order_relaxed);
}

/* Counts one read outcome in the totals and, if given, in a keyspace; both
 * get the same latency, read from the clock once (reads are the hot path). */
void uc__count_get(uc_cache_t *c, uc_keyspace_t *ks, int rc, uint64_t t0)
{
    uc__stats_t *sts[2] = {&c->totals, ks != NULL ? &ks->stats : NULL};

    /* A refill's own read is no client's: counted, it would be a miss for
     * every refill and hide what refills do to the hit rate. */
    if (uc__refilling()) {
        return;
    }
    size_t bucket = uc__hist_bucket(uc__now_us(&c->env) - t0);
    for (int i = 0; i < 2 && sts[i] != NULL; i++) {
        if (rc == UC_OK) {
            UC__COUNT(sts[i], hits);
        } else if (rc == UC_MISS) {
            UC__COUNT(sts[i], misses);
        } else {
            UC__COUNT(sts[i], errors);
        }
        atomic_fetch_add_explicit(&sts[i]->get_us[bucket], 1,
                                  memory_order_relaxed);
    }
}

void uc__count_set(uc_cache_t *c, uc_keyspace_t *ks, int rc, uint64_t t0)
{
    uc__stats_t *sts[2] = {&c->totals, ks != NULL ? &ks->stats : NULL};
    for (int i = 0; i < 2 && sts[i] != NULL; i++) {
        if (rc == UC_OK) {
            UC__COUNT(sts[i], sets);
        } else if (rc != UC_ESTALE) {
            UC__COUNT(sts[i], set_errors);
            UC__COUNT(sts[i], errors);
        }
        count_latency(sts[i]->set_us, t0, &c->env);
    }
}

void uc__count_error(uc_cache_t *c, uc_keyspace_t *ks)
{
    UC__COUNT(&c->totals, errors);
    if (ks != NULL) {
        UC__COUNT(&ks->stats, errors);
    }
}
