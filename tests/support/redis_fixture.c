/* SPDX-License-Identifier: MIT */
/*
 * Test support: the per-test redis-server fixture and the cache set-up steps
 * that the redis tests share. Failures go through cmocka's fail_msg, so a
 * test that cannot get its server or cache stops at once with the reason.
 */
#include "redis_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

int uc_test_fixture_setup(void **state)
{
    uc_test_fixture_t *f = calloc(1, sizeof(*f));

    *state = f;
    return f != NULL ? 0 : -1;
}

int uc_test_fixture_teardown(void **state)
{
    uc_test_fixture_t *f = *state;

    if (f->started) {
        uc_test_redis_stop(&f->r);
    }
    free(f);
    return 0;
}

void uc_test_fixture_start(uc_test_fixture_t *f, const char *extra)
{
    if (uc_test_redis_start(&f->r, extra) != 0) {
        fail_msg("could not start redis-server");
    }
    f->started = 1;
}

void uc_test_redis_config(uc_config_t *cfg, int port)
{
    uc_config_init(cfg);
    /* Refills after writes would make the misses these tests expect hits. */
    cfg->refill_top = -1;
    cfg->backend = UC_BACKEND_REDIS;
    snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
    cfg->port = port;
}

uc_cache_t *uc_test_open_cache(const uc_config_t *cfg)
{
    uc_cache_t *c = NULL;
    char err[256] = "";
    int rc = uc_cache_create(cfg, &c, err, sizeof(err));

    if (rc != UC_OK) {
        fail_msg("uc_cache_create: %s: %s", uc_err_name(rc), err);
    }
    return c;
}

uc_pool_stats_t uc_test_pool_stats(uc_cache_t *c)
{
    uc_pool_stats_t st;

    memset(&st, 0, sizeof(st));
    uc_cache_pool_stats(c, &st);
    return st;
}
