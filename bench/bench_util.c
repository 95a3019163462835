/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmark programs: option parsing that refuses
 * anything but a whole number in range, so a typo in a bench command line
 * stops the run instead of silently measuring something else.
 */
#include "bench_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int uc_bench_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

uint64_t uc_bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t uc_bench_rng_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

void uc_bench_key_name(unsigned i, char *buf)
{
    memcpy(buf, "key:", 4);
    for (int d = 15; d >= 4; d--) {
        buf[d] = (char)('0' + i % 10u);
        i /= 10u;
    }
    buf[16] = '\0';
}
