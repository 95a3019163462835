/* SPDX-License-Identifier: MIT */
/*
 * Clocks and logging for every module of the library (see env.h).
 */
#include "env.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#define RATELOG_INTERVAL_US 1000000u

uint64_t uc__now_us(const uc__env_t *env)
{
    struct timespec ts;

    if (env != NULL && env->cfg.clock_fn != NULL) {
        return env->cfg.clock_fn(env->cfg.clock_arg);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t uc__wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct timespec uc__deadline(clockid_t clock, uint64_t ms)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    ts.tv_sec += (time_t)(ms / 1000u);
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void vlog(const uc__env_t *env, uc_log_level_t level, const char *fmt,
                 va_list ap, uint64_t suppressed)
{
    char line[512];
    int n = vsnprintf(line, sizeof(line), fmt, ap);

    if (suppressed > 0 && n >= 0 && (size_t)n < sizeof(line)) {
        snprintf(line + n, sizeof(line) - (size_t)n,
                 " (%llu similar lines suppressed)",
                 (unsigned long long)suppressed);
    }
    env->cfg.log_fn(env->cfg.log_arg, level, line);
}

void uc__log(const uc__env_t *env, uc_log_level_t level, const char *fmt, ...)
{
    va_list ap;

    if (env == NULL || env->cfg.log_fn == NULL || level < env->cfg.log_level) {
        return;
    }
    va_start(ap, fmt);
    vlog(env, level, fmt, ap, 0);
    va_end(ap);
}

void uc__log_limited(const uc__env_t *env, uc__ratelog_t *rl,
                     uc_log_level_t level, const char *fmt, ...)
{
    uint64_t now, next;
    va_list ap;

    if (env == NULL || env->cfg.log_fn == NULL || level < env->cfg.log_level) {
        return;
    }
    now = uc__now_us(env);
    next = atomic_load_explicit(&rl->next_us, memory_order_relaxed);
    if (now < next || !atomic_compare_exchange_strong(
                          &rl->next_us, &next, now + RATELOG_INTERVAL_US)) {
        atomic_fetch_add_explicit(&rl->suppressed, 1, memory_order_relaxed);
        return;
    }
    va_start(ap, fmt);
    vlog(env, level, fmt, ap, atomic_exchange(&rl->suppressed, 0));
    va_end(ap);
}
