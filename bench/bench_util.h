/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmark programs (uc-bench, uc-minimal-server).
 * Kept here rather than in tests/support because the bench programs are
 * built even when the tests are not.
 */
#ifndef UC_BENCH_UTIL_H
#define UC_BENCH_UTIL_H

/*
 * Parses s as a whole decimal number in [lo, hi]: no sign games, no trailing
 * text, no overflow. Returns 0 and writes *out, or -1 leaving *out untouched
 * (s may be NULL: -1).
 */
int uc_bench_parse_long(const char *s, long lo, long hi, long *out);

#endif
