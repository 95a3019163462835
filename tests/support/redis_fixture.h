/* SPDX-License-Identifier: MIT */
/*
 * Test support: the cmocka fixture shared by the tests that give each test a
 * redis-server of its own, and the few steps every such test repeats
 * (a redis config pointing at it, a cache opened or the test failed, pool
 * statistics read into a value). Needs cmocka: only for cmocka tests.
 */
#ifndef UC_TEST_REDIS_FIXTURE_H
#define UC_TEST_REDIS_FIXTURE_H

#include "redis_server.h"
#include "utxocache/utxocache.h"

/*
 * A test's server lives in its fixture, so that the teardown stops it (and
 * resumes it first, if it was left stopped) even when an assertion failed
 * half-way.
 */
typedef struct {
    uc_test_redis_t r;
    int started; /* 1 once uc_test_fixture_start succeeded */
} uc_test_fixture_t;

/* cmocka setup: a zeroed fixture in *state (no server yet); 0 or -1. */
int uc_test_fixture_setup(void **state);

/* cmocka teardown: stops the fixture's server if started, frees it; 0. */
int uc_test_fixture_teardown(void **state);

/* Starts the fixture's server with extra config lines (may be NULL), or
 * fails the running test. */
void uc_test_fixture_start(uc_test_fixture_t *f, const char *extra);

/* uc_config_init, then the redis backend at 127.0.0.1:port; the caller sets
 * its own timeouts, breaker and pool size. */
void uc_test_redis_config(uc_config_t *cfg, int port);

/* uc_cache_create(cfg), or fails the running test with the error text. */
uc_cache_t *uc_test_open_cache(const uc_config_t *cfg);

/* The cache's pool statistics (zeroed first). */
uc_pool_stats_t uc_test_pool_stats(uc_cache_t *c);

#endif
