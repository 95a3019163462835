/* SPDX-License-Identifier: MIT */
/* Test support: free ports, temporary directories, time. */
#ifndef UC_TEST_UTIL_H
#define UC_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "utxocache/utxocache.h"

/* A loopback TCP port that nothing listens on right now (bind to port 0). */
int uc_test_free_port(void);

/*
 * Four keyspaces of the web-api's shapes (feedback_stats, backfill_job,
 * recent_metrics, aggregated_metrics) for the library's own tests, which
 * do not link the service. Sets *n.
 */
const uc_keyspace_def_t *uc_test_keyspaces(size_t *n);

/* A loader that does not look at the entry's fields. */
typedef int (*uc_test_loader_fn)(void *arg, char **val, size_t *len);

/*
 * uc_keyspace_get_or_load() with the loader and validator given per call
 * and the result spread over out-parameters (*val is the caller's; src may
 * be NULL), which keeps the older suites' calls one line each.
 */
int uc_test_get_or_load(uc_keyspace_t *ks, const char *const *fields,
                        size_t nfields, uc_test_loader_fn loader, void *arg,
                        uc_validator_fn validator, void *validator_arg,
                        char **val, size_t *len, uc_source_t *src);

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
