/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmark programs (uc-bench, uc-cluster-bench,
 * uc-near-bench, uc-minimal-server).
 * Kept here rather than in tests/support because the bench programs are
 * built even when the tests are not.
 */
#ifndef UC_BENCH_UTIL_H
#define UC_BENCH_UTIL_H

#include <stdint.h>

/* Length of a redis-benchmark key ("key:" and 12 digits) with its NUL. */
#define UC_BENCH_KEY_LEN 17

/*
 * Parses s as a whole decimal number in [lo, hi]: no sign games, no trailing
 * text, no overflow. Returns 0 and writes *out, or -1 leaving *out untouched
 * (s may be NULL: -1).
 */
int uc_bench_parse_long(const char *s, long lo, long hi, long *out);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t uc_bench_now_ns(void);

/* xorshift64*: a cheap per-thread generator (*s must start nonzero). */
uint64_t uc_bench_rng_next(uint64_t *s);

/* redis-benchmark's key for index i ("key:%012u", -r) into
 * buf[UC_BENCH_KEY_LEN], so both sides of a comparison touch the same keys. */
void uc_bench_key_name(unsigned i, char *buf);

#endif
