/* SPDX-License-Identifier: MIT */
/* Test support: free ports, temporary directories, time. */
#ifndef UC_TEST_UTIL_H
#define UC_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A loopback TCP port that nothing listens on right now (bind to port 0). */
int uc_test_free_port(void);

/* Creates a fresh temporary directory under $UC_TEST_TMPDIR or /tmp. */
int uc_test_mkdtemp(char *buf, size_t len, const char *tag);

/* Removes a directory tree (rm -rf); ignores errors. */
void uc_test_rmtree(const char *dir);

/* Monotonic time in ms / µs. */
uint64_t uc_test_now_ms(void);
uint64_t uc_test_now_us(void);

/* Sleeps for ms milliseconds. */
void uc_test_sleep_ms(unsigned ms);

/* A manual clock for uc_config_t.clock_fn: arg points to an
 * `_Atomic uint64_t` holding the time in µs; tests advance it with
 * atomic_fetch_add. */
uint64_t uc_test_manual_clock(void *arg);

#endif
