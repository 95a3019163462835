/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmark programs: option parsing that refuses
 * anything but a whole number in range, so a typo in a bench command line
 * stops the run instead of silently measuring something else.
 */
#include "bench_util.h"

#include <errno.h>
#include <stdlib.h>

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
