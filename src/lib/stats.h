/* SPDX-License-Identifier: MIT */
/*
 * Lock-free statistics: the same counters as uc_stats_t (generated from the
 * one table in cache.h), as C11 atomics, so that every thread can count
 * without a lock and readers get a copy. Counters are relaxed: a copy is a
 * consistent-enough snapshot for monitoring, not a transaction.
 */
#ifndef UC_LIB_STATS_H
#define UC_LIB_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "utxocache/cache.h"

typedef struct {
#define UC__ATOMIC_FIELD(name, help) _Atomic uint64_t name;
    UC_STATS_COUNTERS(UC__ATOMIC_FIELD)
#undef UC__ATOMIC_FIELD
    _Atomic uint64_t get_us[UC_HIST_BUCKETS];
    _Atomic uint64_t set_us[UC_HIST_BUCKETS];
} uc__stats_t;

#define UC__COUNT(st, field)                                                   \
    atomic_fetch_add_explicit(&(st)->field, 1, memory_order_relaxed)

/* Index of the histogram bucket for a duration in µs. */
unsigned uc__hist_bucket(uint64_t us);

void uc__stats_copy(const uc__stats_t *st, uc_stats_t *out);

#endif
