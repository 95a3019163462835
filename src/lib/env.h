/* SPDX-License-Identifier: MIT */
/*
 * The ground floor of the library: the resolved configuration, the clocks
 * and the logger. Every other module calls down into this one; it calls
 * nothing above it.
 */
#ifndef UC_LIB_ENV_H
#define UC_LIB_ENV_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "utxocache/config.h"

typedef struct uc__env {
    uc_config_t cfg; /* defaults already resolved */
} uc__env_t;

/* Monotonic time in microseconds from the configured clock. */
uint64_t uc__now_us(const uc__env_t *env);

/* Wall-clock time in milliseconds since the epoch (envelopes, the log). */
uint64_t uc__wall_ms(void);

/* The time ms from now on the given clock, as pthread's timed waits take
 * it (CLOCK_MONOTONIC for condition variables set so, CLOCK_REALTIME for
 * pthread_mutex_timedlock). */
struct timespec uc__deadline(clockid_t clock, uint64_t ms);

/* Formats and passes one line to the configured logger, if any. */
void uc__log(const uc__env_t *env, uc_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * A rate limit for one kind of log line: at most one line per interval,
 * with the number of lines held back since. Zero-initialised is ready.
 */
typedef struct {
    _Atomic uint64_t next_us;
    _Atomic uint64_t suppressed;
} uc__ratelog_t;

/* uc__log() unless a line of this kind went out less than 1 s ago. */
void uc__log_limited(const uc__env_t *env, uc__ratelog_t *rl,
                     uc_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif
