/* SPDX-License-Identifier: MIT */
/*
 * Auto-pipelining (src/lib/redis.c, "auto-pipelining") against a real
 * redis-server of each test's own: concurrent GETs and SETs share writes on
 * one connection, every caller gets its own reply and nothing is sent twice
 * or lost; a stopped server answers every queued caller within a bound; an
 * entry read of a dataset that is no longer trusted is refused as before;
 * pipeline_max < 0 sends each call on its own connection.
 *
 * Nothing here asserts a speed; bench/uc-bench and bench/uc-cluster-bench
 * measure what pipelining gains.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_fixture.h"
#include "redis_server.h"
#include "util.h"
#include "utxocache/utxocache.h"

#define THREADS 16
#define CALLS 1500
/* Bound of every wait in this file (a loaded 2-core machine, sanitizers). */
#define BOUND_MS 15000

static void config(uc_config_t *cfg, int port, int pipeline_max)
{
    uc_test_redis_config(cfg, port);
    /* The store alone: the near cache would answer GETs itself. */
    cfg->near_off = 1;
    cfg->command_timeout_ms = 200;
    cfg->connect_timeout_ms = 200;
    cfg->acquire_timeout_ms = 1000;
    cfg->breaker_threshold = 1000000; /* every call reaches the server */
    cfg->pipeline_max = pipeline_max;
}

typedef struct {
    uc_cache_t *c;
    int id;
    int wrong;  /* replies that were not this caller's */
    int failed; /* calls that did not answer UC_OK / UC_MISS */
    int sets;   /* SETs that answered UC_OK */
    uint64_t max_us;
    _Atomic int *go;
} worker_t;

/* Each caller writes keys only it writes, and reads back each one, a key
 * no one wrote, and its previous key: a reply handed to the wrong caller
 * shows as a value with another caller's id or another index. */
static void *worker(void *arg)
{
    worker_t *w = arg;
    char key[64], val[96], other[64];

    while (atomic_load(w->go) == 0) {
    }
    for (int i = 0; i < CALLS; i++) {
        char *got = NULL;
        size_t len = 0;
        /* Lengths vary, so that replies split across reads. */
        int n = snprintf(val, sizeof(val), "caller %d value %d %.*s", w->id, i,
                         i % 50,
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        size_t klen = (size_t)snprintf(key, sizeof(key), "pl:%d:%d", w->id, i);
        uint64_t t0 = uc_test_now_us();
        int rc = uc_cache_set(w->c, key, klen, val, (size_t)n, 60000);

        if (rc == UC_OK) {
            w->sets++;
        } else {
            w->failed++;
        }
        rc = uc_cache_get(w->c, key, klen, &got, &len);
        if (rc != UC_OK) {
            w->failed++;
        } else if (len != (size_t)n || memcmp(got, val, len) != 0) {
            w->wrong++;
        }
        uc_free(got);
        got = NULL;
        klen =
            (size_t)snprintf(other, sizeof(other), "pl:nobody:%d:%d", w->id, i);
        rc = uc_cache_get(w->c, other, klen, &got, &len);
        if (rc == UC_OK) {
            w->wrong++;
            uc_free(got);
        } else if (rc != UC_MISS) {
            w->failed++;
        }
        uint64_t dt = uc_test_now_us() - t0;
        if (dt > w->max_us) {
            w->max_us = dt;
        }
    }
    return NULL;
}

static void run_workers(uc_cache_t *c, worker_t *ws)
{
    pthread_t th[THREADS];
    _Atomic int go = 0;

    for (int i = 0; i < THREADS; i++) {
        memset(&ws[i], 0, sizeof(ws[i]));
        ws[i].c = c;
        ws[i].id = i;
        ws[i].go = &go;
        assert_int_equal(pthread_create(&th[i], NULL, worker, &ws[i]), 0);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
}

/* calls= of one command in INFO commandstats, 0 when absent. */
static long long calls_of(uc_test_redis_t *r, const char *cmd)
{
    char path[600], shell[800], line[256], prefix[64];
    long long n = 0;
    int plen = snprintf(prefix, sizeof(prefix), "cmdstat_%s:calls=", cmd);
    FILE *f;

    snprintf(path, sizeof(path), "%s/commandstats.txt", r->dir);
    snprintf(shell, sizeof(shell),
             "redis-cli -h 127.0.0.1 -p %d INFO commandstats > '%s'", r->port,
             path);
    assert_int_equal(system(shell), 0);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, prefix, (size_t)plen) == 0) {
            n = atoll(line + plen);
        }
    }
    fclose(f);
    return n;
}

static void pipelined_calls_get_their_own_replies(void **state)
{
    uc_test_fixture_t *f = *state;
    worker_t ws[THREADS];
    uc_config_t cfg;

    uc_test_fixture_start(f, NULL);
    config(&cfg, f->r.port, 64);
    uc_cache_t *c = uc_test_open_cache(&cfg);
    long long set0 = calls_of(&f->r, "set");
    long long get0 = calls_of(&f->r, "get");

    run_workers(c, ws);
    int sets = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(ws[i].wrong, 0);
        assert_int_equal(ws[i].failed, 0);
        sets += ws[i].sets;
    }
    assert_int_equal(sets, THREADS * CALLS);
    /* Each call sent once: no reply lost and its command sent again. */
    assert_int_equal(calls_of(&f->r, "set") - set0, THREADS * CALLS);
    assert_int_equal(calls_of(&f->r, "get") - get0, 2 * THREADS * CALLS);
    uc_pool_stats_t ps = uc_test_pool_stats(c);
    printf("FIGURE pipeline_batches %llu calls %llu (%.1f per batch) "
           "connections %llu\n",
           (unsigned long long)ps.batches, (unsigned long long)ps.batched,
           ps.batches > 0 ? (double)ps.batched / (double)ps.batches : 0.0,
           (unsigned long long)ps.connects);
    /* Sixteen threads on one server do meet in batches. */
    assert_true(ps.batches > 0);
    assert_true(ps.batched >= 2 * ps.batches);
    /* One batch out at a time: one connection (two if one was dropped). */
    assert_true(ps.connects <= 2);
    uc_cache_destroy(c);
}

static void pipelining_off_uses_own_connections(void **state)
{
    uc_test_fixture_t *f = *state;
    worker_t ws[THREADS];
    uc_config_t cfg;

    uc_test_fixture_start(f, NULL);
    config(&cfg, f->r.port, -1);
    uc_cache_t *c = uc_test_open_cache(&cfg);

    run_workers(c, ws);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(ws[i].wrong, 0);
        assert_int_equal(ws[i].failed, 0);
    }
    uc_pool_stats_t ps = uc_test_pool_stats(c);
    assert_int_equal(ps.batches, 0);
    assert_int_equal(ps.batched, 0);
    uc_cache_destroy(c);
}

typedef struct {
    uc_cache_t *c;
    int rc;
    uint64_t us;
} stopped_t;

static void *stopped_call(void *arg)
{
    stopped_t *s = arg;
    char *got = NULL;
    size_t len = 0;
    uint64_t t0 = uc_test_now_us();

    s->rc = uc_cache_get(s->c, "pl:stopped", 10, &got, &len);
    s->us = uc_test_now_us() - t0;
    uc_free(got);
    return NULL;
}

/* A stopped server: every queued caller gets an error, within a bound of a
 * few command timeouts (its leader's batch, then its own); afterwards the
 * calls work again. */
static void stopped_server_answers_every_caller(void **state)
{
    uc_test_fixture_t *f = *state;
    stopped_t ss[THREADS];
    pthread_t th[THREADS];
    uc_config_t cfg;
    char *got = NULL;
    size_t len = 0;

    uc_test_fixture_start(f, NULL);
    config(&cfg, f->r.port, 64);
    uc_cache_t *c = uc_test_open_cache(&cfg);
    assert_int_equal(uc_cache_set(c, "pl:stopped", 10, "v", 1, 60000), UC_OK);
    assert_int_equal(uc_test_redis_signal(&f->r, SIGSTOP), 0);
    for (int i = 0; i < THREADS; i++) {
        ss[i].c = c;
        ss[i].rc = UC_OK;
        assert_int_equal(pthread_create(&th[i], NULL, stopped_call, &ss[i]), 0);
    }
    uint64_t worst = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_not_equal(ss[i].rc, UC_OK);
        assert_int_not_equal(ss[i].rc, UC_MISS);
        if (ss[i].us > worst) {
            worst = ss[i].us;
        }
    }
    assert_int_equal(uc_test_redis_signal(&f->r, SIGCONT), 0);
    printf("FIGURE pipeline_stopped_worst_us %llu\n",
           (unsigned long long)worst);
    /* Leader's batch + its own + a connect: well under this. */
    assert_true(worst < 5u * 200u * 1000u);
    uint64_t until = uc_test_now_ms() + BOUND_MS;
    int rc;
    while ((rc = uc_cache_get(c, "pl:stopped", 10, &got, &len)) != UC_OK &&
           uc_test_now_ms() < until) {
        uc_test_sleep_ms(20);
    }
    assert_int_equal(rc, UC_OK);
    assert_int_equal(len, 1);
    uc_free(got);
    uc_cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(pipelined_calls_get_their_own_replies,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(pipelining_off_uses_own_connections,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(stopped_server_answers_every_caller,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
