/* SPDX-License-Identifier: MIT */
/*
 * The memory backend through its ops table, as the cache core drives it:
 * values, TTLs on a manual clock, multi-key calls, glob deletes and counts,
 * the byte budget and LRU order, capped reads (get_max) and the conditional
 * stores (add, cas) table by table, store figures, threads racing add and
 * cas for one key, and threads hammering overlapping keys (also run under
 * TSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define MIB ((size_t)1 << 20)
#define START_US 1000000000ULL

typedef struct {
    _Atomic uint64_t now_us;
    uc__env_t env;
    uc__backend_t *b;
} fx_t;

static uint64_t manual_clock(void *arg)
{
    return atomic_load((_Atomic uint64_t *)arg);
}

/* A backend with `max_bytes` of budget on a manual clock; freed by fx_free. */
static fx_t *fx_new(size_t max_bytes)
{
    char err[128] = "";
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    atomic_store(&fx->now_us, START_US);
    uc_config_init(&fx->env.cfg);
    fx->env.cfg.memory_max_bytes = max_bytes;
    fx->env.cfg.clock_fn = manual_clock;
    fx->env.cfg.clock_arg = &fx->now_us;
    assert_int_equal(uc__memory_create(&fx->env, &fx->b, err, sizeof(err)),
                     UC_OK);
    assert_non_null(fx->b);
    assert_string_equal(fx->b->ops->name, "memory");
    return fx;
}

static void fx_free(fx_t *fx)
{
    fx->b->ops->destroy(fx->b);
    free(fx);
}

static void advance_ms(fx_t *fx, uint64_t ms)
{
    atomic_fetch_add(&fx->now_us, ms * 1000);
}

static int set_s(fx_t *fx, const char *key, const char *val, uint64_t ttl_ms)
{
    return fx->b->ops->set(fx->b, key, strlen(key), val, strlen(val), ttl_ms);
}

static void check_value(fx_t *fx, const char *key, const char *want)
{
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(fx->b->ops->get(fx->b, key, strlen(key), &v, &len), UC_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    assert_int_equal(v[len], '\0');
    free(v);
}

static void check_miss(fx_t *fx, const char *key)
{
    char *v = (char *)"untouched";
    size_t len = 12345;
    assert_int_equal(fx->b->ops->get(fx->b, key, strlen(key), &v, &len),
                     UC_MISS);
    assert_string_equal(v, "untouched");
    assert_int_equal(len, 12345);
}

static int exists_s(fx_t *fx, const char *key)
{
    return fx->b->ops->exists(fx->b, key, strlen(key));
}

static uc_server_info_t info_of(fx_t *fx)
{
    uc_server_info_t info;
    assert_int_equal(fx->b->ops->info(fx->b, &info), UC_OK);
    return info;
}

/* Bytes the store charges for one entry on top of its key and value,
 * measured rather than assumed so the budget tests follow the accounting. */
static size_t entry_overhead(void)
{
    fx_t *fx = fx_new(0);
    size_t ov;
    assert_int_equal(set_s(fx, "k", "v", 0), UC_OK);
    ov = (size_t)info_of(fx).used_memory - 2;
    assert_true(ov > 0 && ov < 256);
    fx_free(fx);
    return ov;
}

static void set_get_miss(void **state)
{
    fx_t *fx = fx_new(0);
    (void)state;
    check_miss(fx, "a");
    assert_int_equal(set_s(fx, "a", "alpha", 0), UC_OK);
    assert_int_equal(set_s(fx, "b", "", 0), UC_OK);
    check_value(fx, "a", "alpha");
    check_value(fx, "b", "");
    check_miss(fx, "c");
    check_miss(fx, "A");
    fx_free(fx);
}

static void binary_keys_and_values(void **state)
{
    static const char k1[] = {'k', '\0', '1'};
    static const char k2[] = {'k', '\0', '2'};
    static const char val[] = {'\0', 'x', '\0', '\xff'};
    fx_t *fx = fx_new(0);
    char *v = NULL;
    size_t len = 0;
    (void)state;
    assert_int_equal(
        fx->b->ops->set(fx->b, k1, sizeof(k1), val, sizeof(val), 0), UC_OK);
    assert_int_equal(fx->b->ops->get(fx->b, k2, sizeof(k2), &v, &len), UC_MISS);
    assert_int_equal(fx->b->ops->get(fx->b, k1, 1, &v, &len), UC_MISS);
    assert_int_equal(fx->b->ops->get(fx->b, k1, sizeof(k1), &v, &len), UC_OK);
    assert_int_equal(len, sizeof(val));
    assert_memory_equal(v, val, sizeof(val));
    assert_int_equal(v[len], '\0');
    free(v);
    fx_free(fx);
}

static void overwrite(void **state)
{
    fx_t *fx = fx_new(0);
    uc_server_info_t info;
    (void)state;
    assert_int_equal(set_s(fx, "k", "first value", 0), UC_OK);
    assert_int_equal(set_s(fx, "k", "2nd", 0), UC_OK);
    check_value(fx, "k", "2nd");
    info = info_of(fx);
    assert_int_equal(info.keys, 1);
    /* The old entry's bytes are released, not leaked into the count. */
    assert_int_equal(info.used_memory, entry_overhead() + 1 + 3);
    /* Overwriting with a TTL replaces the "never" expiry, and back. */
    assert_int_equal(set_s(fx, "k", "3rd", 10), UC_OK);
    assert_int_equal(set_s(fx, "k", "4th", 0), UC_OK);
    advance_ms(fx, 20);
    check_value(fx, "k", "4th");
    fx_free(fx);
}

static void ttl_expiry(void **state)
{
    fx_t *fx = fx_new(0);
    uc_server_info_t info;
    (void)state;
    assert_int_equal(set_s(fx, "short", "s", 100), UC_OK);
    assert_int_equal(set_s(fx, "forever", "f", 0), UC_OK);
    advance_ms(fx, 99);
    check_value(fx, "short", "s");
    atomic_fetch_add(&fx->now_us, 999);
    assert_int_equal(exists_s(fx, "short"), UC_OK);
    atomic_fetch_add(&fx->now_us, 1);
    check_miss(fx, "short");
    assert_int_equal(exists_s(fx, "short"), UC_MISS);
    info = info_of(fx);
    assert_int_equal(info.keys, 1);
    assert_int_equal(info.expired_keys, 1);
    advance_ms(fx, 1000000);
    check_value(fx, "forever", "f");
    fx_free(fx);
}

static void ttl_values(void **state)
{
    fx_t *fx = fx_new(0);
    int64_t ttl = 42;
    (void)state;
    assert_int_equal(set_s(fx, "none", "x", 0), UC_OK);
    assert_int_equal(set_s(fx, "five", "x", 5000), UC_OK);
    assert_int_equal(fx->b->ops->ttl(fx->b, "none", 4, &ttl), UC_OK);
    assert_int_equal(ttl, -1);
    assert_int_equal(fx->b->ops->ttl(fx->b, "five", 4, &ttl), UC_OK);
    assert_int_equal(ttl, 5000);
    advance_ms(fx, 1500);
    assert_int_equal(fx->b->ops->ttl(fx->b, "five", 4, &ttl), UC_OK);
    assert_int_equal(ttl, 3500);
    /* Partial milliseconds round up: a live key never reports 0. */
    atomic_fetch_add(&fx->now_us, 3499 * 1000 + 1);
    assert_int_equal(fx->b->ops->ttl(fx->b, "five", 4, &ttl), UC_OK);
    assert_int_equal(ttl, 1);
    atomic_fetch_add(&fx->now_us, 999);
    ttl = 42;
    assert_int_equal(fx->b->ops->ttl(fx->b, "five", 4, &ttl), UC_MISS);
    assert_int_equal(ttl, 42);
    assert_int_equal(fx->b->ops->ttl(fx->b, "nope", 4, &ttl), UC_MISS);
    assert_int_equal(ttl, 42);
    fx_free(fx);
}

static void del_existed(void **state)
{
    fx_t *fx = fx_new(0);
    int existed = -1;
    (void)state;
    assert_int_equal(set_s(fx, "d", "1", 0), UC_OK);
    assert_int_equal(set_s(fx, "t", "1", 10), UC_OK);
    assert_int_equal(fx->b->ops->del(fx->b, "d", 1, &existed), UC_OK);
    assert_int_equal(existed, 1);
    check_miss(fx, "d");
    assert_int_equal(fx->b->ops->del(fx->b, "d", 1, &existed), UC_OK);
    assert_int_equal(existed, 0);
    assert_int_equal(fx->b->ops->del(fx->b, "d", 1, NULL), UC_OK);
    advance_ms(fx, 10);
    /* An expired key did not exist any more. */
    assert_int_equal(fx->b->ops->del(fx->b, "t", 1, &existed), UC_OK);
    assert_int_equal(existed, 0);
    assert_int_equal(info_of(fx).keys, 0);
    assert_int_equal(info_of(fx).used_memory, 0);
    fx_free(fx);
}

static void exists_probe(void **state)
{
    fx_t *fx = fx_new(0);
    (void)state;
    assert_int_equal(exists_s(fx, "e"), UC_MISS);
    assert_int_equal(set_s(fx, "e", "", 0), UC_OK);
    assert_int_equal(exists_s(fx, "e"), UC_OK);
    assert_int_equal(exists_s(fx, "e2"), UC_MISS);
    assert_int_equal(info_of(fx).server_hits, 0); /* a probe is not a read */
    fx_free(fx);
}

static void mget_mset(void **state)
{
    fx_t *fx = fx_new(0);
    const char *keys[] = {"m:1", "m:2", "m:3"};
    const size_t klens[] = {3, 3, 3};
    const char *vals[] = {"one", "two", "three"};
    const size_t vlens[] = {3, 3, 5};
    const char *qk[] = {"m:3", "m:0", "m:1", "m:9", "m:2", "m:1"};
    const size_t qkl[] = {3, 3, 3, 3, 3, 3};
    const char *want[] = {"three", NULL, "one", NULL, "two", "one"};
    uc_value_t out[6];
    uc_server_info_t info;
    (void)state;

    assert_int_equal(fx->b->ops->mset(fx->b, 0, NULL, NULL, NULL, NULL, 0),
                     UC_OK);
    assert_int_equal(fx->b->ops->mset(fx->b, 3, keys, klens, vals, vlens, 50),
                     UC_OK);
    assert_int_equal(fx->b->ops->mget(fx->b, 6, qk, qkl, out), UC_OK);
    for (size_t i = 0; i < 6; i++) {
        if (want[i] == NULL) {
            assert_int_equal(out[i].status, UC_MISS);
            continue;
        }
        assert_int_equal(out[i].status, UC_OK);
        assert_int_equal(out[i].len, strlen(want[i]));
        assert_string_equal(out[i].data, want[i]);
        free(out[i].data);
    }
    info = info_of(fx);
    assert_int_equal(info.server_hits, 4);
    assert_int_equal(info.server_misses, 2);
    /* The batch shares one TTL. */
    advance_ms(fx, 50);
    assert_int_equal(fx->b->ops->mget(fx->b, 3, keys, klens, out), UC_OK);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(out[i].status, UC_MISS);
    }
    fx_free(fx);
}

static void fill_keys(fx_t *fx, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(set_s(fx, keys[i], keys[i], 0), UC_OK);
    }
}

static const char *const pattern_keys[] = {
    "p:fb:stats:1",  "p:fb:stats:2", "p:fb:stats:3", "p:fb:stats:10",
    "p:fb:stats:11", "p:fb:list:1",  "p:fb:list:2",  "p:bf:job:1",
    "p:bf:job:2",    "p:a*b",        "p:axb",        "q:fb:stats:1",
};
#define N_PATTERN_KEYS (sizeof(pattern_keys) / sizeof(pattern_keys[0]))

static void delete_pattern_globs(void **state)
{
    static const struct {
        const char *glob;
        size_t removed;
    } cases[] = {
        {"p:fb:stats:*", 5},
        {"p:fb:stats:?", 3},
        {"p:fb:stats:1?", 2},
        {"p:fb:*", 7},
        {"p:fb:list:[12]", 2},
        {"p:bf:job:[!1]", 1},
        {"p:a\\*b", 1},
        {"p:a*b", 2},
        {"*:stats:1", 2},
        {"p:*", 11},
        {"*", 12},
        {"nothing:*", 0},
        {"p:fb:stats:", 0},
    };
    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        fx_t *fx = fx_new(0);
        size_t removed = 999;
        uint64_t left = 0;
        fill_keys(fx, pattern_keys, N_PATTERN_KEYS);
        assert_int_equal(fx->b->ops->delete_pattern(fx->b, cases[c].glob, NULL,
                                                    NULL, &removed),
                         UC_OK);
        if (removed != cases[c].removed) {
            fail_msg("glob '%s' removed %zu, want %zu", cases[c].glob, removed,
                     cases[c].removed);
        }
        assert_int_equal(
            fx->b->ops->count_pattern(fx->b, "*", NULL, NULL, &left), UC_OK);
        assert_int_equal(left, N_PATTERN_KEYS - cases[c].removed);
        assert_int_equal(info_of(fx).keys, left);
        assert_int_equal(
            fx->b->ops->count_pattern(fx->b, cases[c].glob, NULL, NULL, &left),
            UC_OK);
        assert_int_equal(left, 0);
        fx_free(fx);
    }
}

/* Accepts keys whose last byte is an even digit; counts its calls. */
static int even_filter(void *arg, const char *key, size_t klen)
{
    (*(int *)arg)++;
    return klen > 0 && (key[klen - 1] - '0') % 2 == 0;
}

static void delete_pattern_filter(void **state)
{
    fx_t *fx = fx_new(0);
    size_t removed = 0;
    int calls = 0;
    (void)state;
    fill_keys(fx, pattern_keys, N_PATTERN_KEYS);
    assert_int_equal(fx->b->ops->delete_pattern(fx->b, "p:fb:*", even_filter,
                                                &calls, &removed),
                     UC_OK);
    /* stats:2, stats:10, list:2; the filter only sees glob matches. */
    assert_int_equal(removed, 3);
    assert_int_equal(calls, 7);
    check_miss(fx, "p:fb:stats:2");
    check_miss(fx, "p:fb:stats:10");
    check_miss(fx, "p:fb:list:2");
    check_value(fx, "p:fb:stats:1", "p:fb:stats:1");
    check_value(fx, "p:fb:stats:11", "p:fb:stats:11");
    check_value(fx, "p:bf:job:2", "p:bf:job:2");
    check_value(fx, "q:fb:stats:1", "q:fb:stats:1");
    assert_int_equal(info_of(fx).keys, N_PATTERN_KEYS - 3);
    fx_free(fx);
}

static void count_pattern(void **state)
{
    fx_t *fx = fx_new(0);
    uint64_t count = 0;
    int calls = 0;
    (void)state;
    fill_keys(fx, pattern_keys, N_PATTERN_KEYS);
    assert_int_equal(set_s(fx, "p:fb:stats:4", "x", 10), UC_OK);
    assert_int_equal(
        fx->b->ops->count_pattern(fx->b, "p:fb:stats:*", NULL, NULL, &count),
        UC_OK);
    assert_int_equal(count, 6);
    assert_int_equal(fx->b->ops->count_pattern(fx->b, "p:fb:stats:*",
                                               even_filter, &calls, &count),
                     UC_OK);
    assert_int_equal(count, 3);
    /* Counting deletes nothing; an expired key is not counted. */
    advance_ms(fx, 10);
    assert_int_equal(
        fx->b->ops->count_pattern(fx->b, "p:fb:stats:*", NULL, NULL, &count),
        UC_OK);
    assert_int_equal(count, 5);
    assert_int_equal(info_of(fx).keys, N_PATTERN_KEYS);
    fx_free(fx);
}

static void lru_eviction_order(void **state)
{
    /* Keys "k1".."k9" with 10-byte values: four fit exactly. */
    size_t cost = entry_overhead() + 2 + 10;
    fx_t *fx = fx_new(4 * cost);
    uc_server_info_t info;
    (void)state;
    assert_int_equal(set_s(fx, "k1", "0123456789", 0), UC_OK);
    assert_int_equal(set_s(fx, "k2", "0123456789", 0), UC_OK);
    assert_int_equal(set_s(fx, "k3", "0123456789", 0), UC_OK);
    assert_int_equal(set_s(fx, "k4", "0123456789", 0), UC_OK);
    info = info_of(fx);
    assert_int_equal(info.keys, 4);
    assert_int_equal(info.used_memory, 4 * cost);
    assert_int_equal(info.evicted_keys, 0);

    /* A read makes k1 the most recently used: k2 is now the oldest. */
    check_value(fx, "k1", "0123456789");
    assert_int_equal(set_s(fx, "k5", "0123456789", 0), UC_OK);
    assert_int_equal(exists_s(fx, "k2"), UC_MISS);
    assert_int_equal(exists_s(fx, "k1"), UC_OK);
    assert_int_equal(exists_s(fx, "k3"), UC_OK);

    /* exists() is a probe and does not refresh k3, which goes next. */
    assert_int_equal(set_s(fx, "k6", "0123456789", 0), UC_OK);
    assert_int_equal(exists_s(fx, "k3"), UC_MISS);

    /* Overwriting refreshes too: k4 survives, k1 goes. */
    assert_int_equal(set_s(fx, "k4", "abcdefghij", 0), UC_OK);
    assert_int_equal(set_s(fx, "k7", "0123456789", 0), UC_OK);
    assert_int_equal(exists_s(fx, "k1"), UC_MISS);
    check_value(fx, "k4", "abcdefghij");
    assert_int_equal(exists_s(fx, "k5"), UC_OK);
    assert_int_equal(exists_s(fx, "k6"), UC_OK);
    assert_int_equal(exists_s(fx, "k7"), UC_OK);

    info = info_of(fx);
    assert_int_equal(info.keys, 4);
    assert_int_equal(info.evicted_keys, 3);
    assert_true(info.used_memory <= info.max_memory);

    /* A larger value pushes out as many of the oldest as it needs. */
    assert_int_equal(set_s(fx, "k8", "0123456789012345678901", 0), UC_OK);
    assert_int_equal(exists_s(fx, "k5"), UC_MISS);
    assert_int_equal(exists_s(fx, "k6"), UC_MISS);
    assert_int_equal(exists_s(fx, "k4"), UC_OK);
    assert_int_equal(exists_s(fx, "k7"), UC_OK);
    assert_int_equal(info_of(fx).evicted_keys, 5);
    fx_free(fx);
}

static void expired_go_before_counting_as_evicted(void **state)
{
    size_t cost = entry_overhead() + 2 + 10;
    fx_t *fx = fx_new(4 * cost);
    uc_server_info_t info;
    (void)state;
    assert_int_equal(set_s(fx, "k1", "0123456789", 5), UC_OK);
    assert_int_equal(set_s(fx, "k2", "0123456789", 5), UC_OK);
    assert_int_equal(set_s(fx, "k3", "0123456789", 0), UC_OK);
    assert_int_equal(set_s(fx, "k4", "0123456789", 0), UC_OK);
    advance_ms(fx, 5);
    assert_int_equal(set_s(fx, "k5", "0123456789", 0), UC_OK);
    assert_int_equal(set_s(fx, "k6", "0123456789", 0), UC_OK);
    info = info_of(fx);
    assert_int_equal(info.evicted_keys, 0);
    assert_int_equal(info.expired_keys, 2);
    assert_int_equal(info.keys, 4);
    assert_int_equal(exists_s(fx, "k3"), UC_OK);
    assert_int_equal(exists_s(fx, "k4"), UC_OK);
    fx_free(fx);
}

static void expired_swept_by_writes(void **state)
{
    fx_t *fx = fx_new(MIB); /* one shard */
    char key[16];
    uc_server_info_t info;
    (void)state;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "short:%d", i);
        assert_int_equal(set_s(fx, key, "x", 1), UC_OK);
    }
    advance_ms(fx, 1);
    /* Nobody reads the expired keys again; writes elsewhere reclaim them. */
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(set_s(fx, "busy", "y", 0), UC_OK);
    }
    info = info_of(fx);
    assert_int_equal(info.keys, 1);
    assert_int_equal(info.expired_keys, 100);
    assert_int_equal(info.evicted_keys, 0);
    assert_int_equal(info.used_memory, entry_overhead() + 4 + 1);
    fx_free(fx);
}

static void too_big(void **state)
{
    size_t ov = entry_overhead();
    fx_t *fx = fx_new(1000);
    char *big = malloc(1001);
    const char *keys[] = {"small", "big"};
    const size_t klens[] = {5, 3};
    const char *vals[2];
    size_t vlens[2];
    (void)state;
    assert_non_null(big);
    memset(big, 'b', 1000);
    big[1000] = '\0';
    assert_int_equal(set_s(fx, "keep", "kept", 0), UC_OK);
    assert_int_equal(fx->b->ops->set(fx->b, "big", 3, big, 1000, 0),
                     UC_ETOOBIG);
    /* Refused without touching the store. */
    check_value(fx, "keep", "kept");
    assert_int_equal(info_of(fx).evicted_keys, 0);

    vals[0] = "s";
    vlens[0] = 1;
    vals[1] = big;
    vlens[1] = 1000;
    assert_int_equal(fx->b->ops->mset(fx->b, 2, keys, klens, vals, vlens, 0),
                     UC_ETOOBIG);
    check_miss(fx, "small");
    /* The conditional stores refuse it too, whatever the key holds. */
    assert_int_equal(fx->b->ops->add(fx->b, "big", 3, big, 1000, 0),
                     UC_ETOOBIG);
    assert_int_equal(fx->b->ops->cas(fx->b, "keep", 4, "kept", 4, big, 1000, 0),
                     UC_ETOOBIG);
    check_value(fx, "keep", "kept");

    /* A value that uses the whole budget fits, alone. */
    assert_int_equal(fx->b->ops->set(fx->b, "big", 3, big, 1000 - ov - 3, 0),
                     UC_OK);
    assert_int_equal(info_of(fx).used_memory, 1000);
    assert_int_equal(exists_s(fx, "keep"), UC_MISS);
    assert_int_equal(fx->b->ops->set(fx->b, "big", 3, big, 1000 - ov - 2, 0),
                     UC_ETOOBIG);
    assert_int_equal(exists_s(fx, "big"), UC_OK);
    free(big);
    fx_free(fx);
}

static void info_figures(void **state)
{
    size_t ov = entry_overhead();
    fx_t *fx = fx_new(3 * MIB);
    uc_server_info_t info;
    uc_pool_stats_t ps;
    int existed;
    (void)state;
    info = info_of(fx);
    assert_int_equal(info.used_memory, 0);
    assert_int_equal(info.max_memory, 3 * MIB);
    assert_int_equal(info.keys, 0);
    assert_string_equal(info.version, "memory");

    assert_int_equal(set_s(fx, "a", "12345", 0), UC_OK);
    assert_int_equal(set_s(fx, "bb", "1234567890", 0), UC_OK);
    assert_int_equal(set_s(fx, "ccc", "", 1), UC_OK);
    info = info_of(fx);
    assert_int_equal(info.keys, 3);
    assert_int_equal(info.used_memory, 3 * ov + 1 + 5 + 2 + 10 + 3);
    assert_int_equal(fx->b->ops->del(fx->b, "bb", 2, &existed), UC_OK);
    advance_ms(fx, 1);
    check_miss(fx, "ccc");
    check_value(fx, "a", "12345");
    info = info_of(fx);
    assert_int_equal(info.keys, 1);
    assert_int_equal(info.used_memory, ov + 1 + 5);
    assert_int_equal(info.expired_keys, 1);
    assert_int_equal(info.evicted_keys, 0);
    assert_int_equal(info.server_hits, 1);
    assert_int_equal(info.server_misses, 1);

    assert_int_equal(fx->b->ops->ping(fx->b), UC_OK);
    memset(&ps, 0xff, sizeof(ps));
    fx->b->ops->pool_stats(fx->b, &ps);
    assert_int_equal(ps.max, 0);
    assert_int_equal(ps.connects, 0);
    assert_int_equal(ps.breaker, UC_BREAKER_CLOSED);
    assert_int_equal(ps.breaker_rejects, 0);
    fx_free(fx);

    /* Zero means the 64 MiB default. */
    fx = fx_new(0);
    assert_int_equal(info_of(fx).max_memory, 64 * MIB);
    fx_free(fx);
}

static void many_keys(void **state)
{
    enum { N = 20000 };
    fx_t *fx = fx_new(0);
    char key[32], val[32];
    uint64_t count = 0;
    (void)state;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "many:%d", i);
        snprintf(val, sizeof(val), "value-%d", i * 7);
        assert_int_equal(set_s(fx, key, val, 0), UC_OK);
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "many:%d", i);
        snprintf(val, sizeof(val), "value-%d", i * 7);
        check_value(fx, key, val);
    }
    assert_int_equal(info_of(fx).keys, N);
    assert_int_equal(info_of(fx).evicted_keys, 0);
    assert_int_equal(
        fx->b->ops->count_pattern(fx->b, "many:1*", NULL, NULL, &count), UC_OK);
    assert_int_equal(count, 1 + 10 + 100 + 1000 + 10000);
    fx_free(fx);
}

/* ---- capped reads and conditional stores ----------------------------------
 */

/* A byte string with its length, so tables can hold values with NULs. */
#define BYTES(s) (s), (sizeof(s) - 1)

/* How a table case leaves the key before the call under test. */
enum { PRE_ABSENT, PRE_LIVE, PRE_EXPIRED, PRE_DELETED };

/* Stores (cur, clen) under key as the case's precondition says. */
static void prepare(fx_t *fx, const char *key, int pre, const char *cur,
                    size_t clen)
{
    switch (pre) {
    case PRE_ABSENT:
        return;
    case PRE_LIVE:
        assert_int_equal(fx->b->ops->set(fx->b, key, strlen(key), cur, clen, 0),
                         UC_OK);
        return;
    case PRE_EXPIRED:
        assert_int_equal(
            fx->b->ops->set(fx->b, key, strlen(key), cur, clen, 10), UC_OK);
        advance_ms(fx, 10);
        return;
    default:
        assert_int_equal(fx->b->ops->set(fx->b, key, strlen(key), cur, clen, 0),
                         UC_OK);
        assert_int_equal(fx->b->ops->del(fx->b, key, strlen(key), NULL), UC_OK);
        return;
    }
}

/* Checks that key holds exactly (want, wlen) through a plain get. */
static void check_bytes(fx_t *fx, const char *key, const char *want,
                        size_t wlen)
{
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(fx->b->ops->get(fx->b, key, strlen(key), &v, &len), UC_OK);
    assert_int_equal(len, wlen);
    assert_memory_equal(v, want, wlen);
    assert_int_equal(v[len], '\0');
    free(v);
}

static void get_max_table(void **state)
{
    static const struct {
        const char *name;
        int pre;
        const char *cur;
        size_t clen;
        size_t max;
        int want;
    } cases[] = {
        {"absent", PRE_ABSENT, BYTES(""), 100, UC_MISS},
        {"absent, cap 0", PRE_ABSENT, BYTES(""), 0, UC_MISS},
        {"deleted", PRE_DELETED, BYTES("gone"), 100, UC_MISS},
        {"expired", PRE_EXPIRED, BYTES("old"), 100, UC_MISS},
        {"empty", PRE_LIVE, BYTES(""), 100, UC_MISS},
        {"empty, cap 0", PRE_LIVE, BYTES(""), 0, UC_MISS},
        {"len == max", PRE_LIVE, BYTES("12345"), 5, UC_OK},
        {"len == max - 1", PRE_LIVE, BYTES("12345"), 6, UC_OK},
        {"len == max + 1", PRE_LIVE, BYTES("12345"), 4, UC_ETOOBIG},
        {"far over", PRE_LIVE, BYTES("12345"), 1, UC_ETOOBIG},
        {"one byte, cap 0", PRE_LIVE, BYTES("x"), 0, UC_ETOOBIG},
        {"one byte, cap 1", PRE_LIVE, BYTES("x"), 1, UC_OK},
        {"binary at cap", PRE_LIVE, BYTES("a\0b\0"), 4, UC_OK},
        {"binary over cap", PRE_LIVE, BYTES("a\0b\0"), 3, UC_ETOOBIG},
        {"no cap to speak of", PRE_LIVE, BYTES("abc"), SIZE_MAX, UC_OK},
    };
    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        fx_t *fx = fx_new(0);
        char *v = (char *)"untouched";
        size_t len = 12345;
        int rc;

        prepare(fx, "gm", cases[c].pre, cases[c].cur, cases[c].clen);
        rc = fx->b->ops->get_max(fx->b, "gm", 2, cases[c].max, &v, &len);
        if (rc != cases[c].want) {
            fail_msg("case '%s': get_max -> %s, want %s", cases[c].name,
                     uc_err_name(rc), uc_err_name(cases[c].want));
        }
        if (rc == UC_OK) {
            assert_int_equal(len, cases[c].clen);
            assert_true(len <= cases[c].max);
            assert_memory_equal(v, cases[c].cur, len);
            assert_int_equal(v[len], '\0');
            free(v);
        } else {
            /* Outputs are written only on success. */
            assert_string_equal(v, "untouched");
            assert_int_equal(len, 12345);
        }
        if (rc == UC_ETOOBIG) {
            /* Refusing to read a value does not drop it. */
            check_bytes(fx, "gm", cases[c].cur, cases[c].clen);
        }
        {
            /* mget_max answers each key as get_max does, in its status. */
            const char *keys[2] = {"gm", "none"};
            size_t klens[2] = {2, 4};
            uc_value_t mv[2];

            memset(mv, 0, sizeof(mv));
            assert_int_equal(
                fx->b->ops->mget_max(fx->b, 2, keys, klens, cases[c].max, mv),
                UC_OK);
            if (mv[0].status != cases[c].want) {
                fail_msg("case '%s': mget_max -> %s, want %s", cases[c].name,
                         uc_err_name(mv[0].status), uc_err_name(cases[c].want));
            }
            assert_int_equal(mv[1].status, UC_MISS);
            if (mv[0].status == UC_OK) {
                assert_int_equal(mv[0].len, cases[c].clen);
                assert_memory_equal(mv[0].data, cases[c].cur, mv[0].len);
            } else {
                assert_null(mv[0].data);
            }
            free(mv[0].data);
            assert_null(mv[1].data);
        }
        fx_free(fx);
    }
}

static void get_max_large_boundary(void **state)
{
    enum { N = 100000 };
    fx_t *fx = fx_new(0);
    char *big = malloc(N);
    char *v = NULL;
    size_t len = 0;
    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < N; i++) {
        big[i] = (char)('a' + i % 26);
    }
    assert_int_equal(fx->b->ops->set(fx->b, "big", 3, big, N, 0), UC_OK);
    assert_int_equal(fx->b->ops->get_max(fx->b, "big", 3, N - 1, &v, &len),
                     UC_ETOOBIG);
    assert_null(v);
    assert_int_equal(fx->b->ops->get_max(fx->b, "big", 3, N, &v, &len), UC_OK);
    assert_int_equal(len, N);
    assert_memory_equal(v, big, N);
    free(v);
    free(big);
    fx_free(fx);
}

static void add_table(void **state)
{
    static const struct {
        const char *name;
        int pre;
        const char *cur;
        size_t clen;
        int want;
    } cases[] = {
        {"absent", PRE_ABSENT, BYTES(""), UC_OK},
        {"deleted", PRE_DELETED, BYTES("old"), UC_OK},
        {"expired", PRE_EXPIRED, BYTES("old"), UC_OK},
        {"live", PRE_LIVE, BYTES("old"), UC_ESTALE},
        {"live, same value", PRE_LIVE, BYTES("new\0v"), UC_ESTALE},
        {"live, empty", PRE_LIVE, BYTES(""), UC_ESTALE},
    };
    static const char val[] = "new\0v";
    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        fx_t *fx = fx_new(0);
        int64_t ttl = 0;
        int rc;

        prepare(fx, "ad", cases[c].pre, cases[c].cur, cases[c].clen);
        rc = fx->b->ops->add(fx->b, "ad", 2, val, sizeof(val) - 1, 0);
        if (rc != cases[c].want) {
            fail_msg("case '%s': add -> %s, want %s", cases[c].name,
                     uc_err_name(rc), uc_err_name(cases[c].want));
        }
        if (rc == UC_OK) {
            check_bytes(fx, "ad", val, sizeof(val) - 1);
        } else {
            check_bytes(fx, "ad", cases[c].cur, cases[c].clen);
        }
        /* Without a TTL the key does not expire, whoever stored it. */
        assert_int_equal(fx->b->ops->ttl(fx->b, "ad", 2, &ttl), UC_OK);
        assert_int_equal(ttl, -1);
        assert_int_equal(info_of(fx).keys, 1);
        fx_free(fx);
    }
}

static void add_ttl(void **state)
{
    fx_t *fx = fx_new(0);
    int64_t ttl = 0;
    (void)state;
    assert_int_equal(fx->b->ops->add(fx->b, "lk", 2, "one", 3, 100), UC_OK);
    assert_int_equal(fx->b->ops->ttl(fx->b, "lk", 2, &ttl), UC_OK);
    assert_int_equal(ttl, 100);
    advance_ms(fx, 99);
    /* Still held: a second add is refused and leaves the TTL alone. */
    assert_int_equal(fx->b->ops->add(fx->b, "lk", 2, "two", 3, 5000),
                     UC_ESTALE);
    assert_int_equal(fx->b->ops->ttl(fx->b, "lk", 2, &ttl), UC_OK);
    assert_int_equal(ttl, 1);
    check_value(fx, "lk", "one");
    /* At its expiry the key is absent again, to get and to add alike. */
    advance_ms(fx, 1);
    check_miss(fx, "lk");
    assert_int_equal(fx->b->ops->add(fx->b, "lk", 2, "two", 3, 5000), UC_OK);
    check_value(fx, "lk", "two");
    assert_int_equal(fx->b->ops->ttl(fx->b, "lk", 2, &ttl), UC_OK);
    assert_int_equal(ttl, 5000);
    /* Expiry is checked on the add itself, not only by a get before it. */
    advance_ms(fx, 5000);
    assert_int_equal(fx->b->ops->add(fx->b, "lk", 2, "three", 5, 0), UC_OK);
    check_value(fx, "lk", "three");
    assert_int_equal(info_of(fx).keys, 1);
    assert_int_equal(info_of(fx).expired_keys, 2);
    fx_free(fx);
}

static void cas_table(void **state)
{
    static const struct {
        const char *name;
        int pre;
        const char *cur;
        size_t clen;
        const char *expect;
        size_t elen;
        int want;
    } cases[] = {
        {"match", PRE_LIVE, BYTES("abc"), BYTES("abc"), UC_OK},
        {"match, binary", PRE_LIVE, BYTES("a\0b"), BYTES("a\0b"), UC_OK},
        {"match, empty", PRE_LIVE, BYTES(""), BYTES(""), UC_OK},
        {"other value", PRE_LIVE, BYTES("abc"), BYTES("abd"), UC_ESTALE},
        {"other, binary", PRE_LIVE, BYTES("a\0b"), BYTES("a\0c"), UC_ESTALE},
        {"expect shorter", PRE_LIVE, BYTES("abc"), BYTES("ab"), UC_ESTALE},
        {"expect longer", PRE_LIVE, BYTES("abc"), BYTES("abcd"), UC_ESTALE},
        {"expect empty", PRE_LIVE, BYTES("abc"), BYTES(""), UC_ESTALE},
        {"value empty", PRE_LIVE, BYTES(""), BYTES("abc"), UC_ESTALE},
        {"absent", PRE_ABSENT, BYTES(""), BYTES("abc"), UC_ESTALE},
        {"absent, expect empty", PRE_ABSENT, BYTES(""), BYTES(""), UC_ESTALE},
        {"deleted", PRE_DELETED, BYTES("abc"), BYTES("abc"), UC_ESTALE},
        {"expired", PRE_EXPIRED, BYTES("abc"), BYTES("abc"), UC_ESTALE},
    };
    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        fx_t *fx = fx_new(0);
        int64_t ttl = 0;
        int rc;

        prepare(fx, "cs", cases[c].pre, cases[c].cur, cases[c].clen);
        rc = fx->b->ops->cas(fx->b, "cs", 2, cases[c].expect, cases[c].elen,
                             "next", 4, 250);
        if (rc != cases[c].want) {
            fail_msg("case '%s': cas -> %s, want %s", cases[c].name,
                     uc_err_name(rc), uc_err_name(cases[c].want));
        }
        if (rc == UC_OK) {
            check_value(fx, "cs", "next");
            assert_int_equal(fx->b->ops->ttl(fx->b, "cs", 2, &ttl), UC_OK);
            assert_int_equal(ttl, 250);
            advance_ms(fx, 250);
            check_miss(fx, "cs");
        } else if (cases[c].pre == PRE_LIVE) {
            /* Refused: the value and its "never" expiry are as they were. */
            check_bytes(fx, "cs", cases[c].cur, cases[c].clen);
            assert_int_equal(fx->b->ops->ttl(fx->b, "cs", 2, &ttl), UC_OK);
            assert_int_equal(ttl, -1);
        } else {
            /* Refused on nothing: nothing is created either. */
            check_miss(fx, "cs");
            assert_int_equal(info_of(fx).keys, 0);
        }
        fx_free(fx);
    }
}

static void cas_ttl_and_chain(void **state)
{
    fx_t *fx = fx_new(0);
    int64_t ttl = 0;
    (void)state;
    assert_int_equal(set_s(fx, "c", "v1", 50), UC_OK);
    /* A TTL of 0 on the new value means none, not "keep the old one". */
    assert_int_equal(fx->b->ops->cas(fx->b, "c", 1, "v1", 2, "v2", 2, 0),
                     UC_OK);
    assert_int_equal(fx->b->ops->ttl(fx->b, "c", 1, &ttl), UC_OK);
    assert_int_equal(ttl, -1);
    advance_ms(fx, 100);
    check_value(fx, "c", "v2");
    /* The value just written is the one to expect next; the old one is
     * stale. */
    assert_int_equal(fx->b->ops->cas(fx->b, "c", 1, "v1", 2, "v3", 2, 0),
                     UC_ESTALE);
    assert_int_equal(fx->b->ops->cas(fx->b, "c", 1, "v2", 2, "v3", 2, 30),
                     UC_OK);
    assert_int_equal(fx->b->ops->ttl(fx->b, "c", 1, &ttl), UC_OK);
    assert_int_equal(ttl, 30);
    /* A cas can empty a key's value, and one can match that. */
    assert_int_equal(fx->b->ops->cas(fx->b, "c", 1, "v3", 2, "", 0, 0), UC_OK);
    check_value(fx, "c", "");
    assert_int_equal(fx->b->ops->cas(fx->b, "c", 1, "", 0, "v4", 2, 0), UC_OK);
    check_value(fx, "c", "v4");
    /* No expected value at all is a programmer error, not "absent". */
    assert_int_equal(fx->b->ops->cas(fx->b, "c", 1, NULL, 0, "v5", 2, 0),
                     UC_EINVAL);
    check_value(fx, "c", "v4");
    assert_int_equal(info_of(fx).keys, 1);
    fx_free(fx);
}

/* ---- racing conditional stores ------------------------------------------- */

#define RACE_THREADS 8
#define RACE_ROUNDS 200
#define RACE_INCREMENTS 300

enum { RACE_ADD, RACE_CAS };

typedef struct {
    fx_t *fx;
    pthread_barrier_t *start;
    unsigned id;
    int kind;
    int rc[RACE_ROUNDS]; /* each round's answer, checked by the main thread */
} race_arg_t;

static void race_key(char *buf, size_t n, unsigned round)
{
    snprintf(buf, n, "race:%u", round);
}

static void race_val(char *buf, size_t n, unsigned id)
{
    snprintf(buf, n, "thread-%u", id);
}

/* One add or one cas per round on that round's key, all threads released
 * together by the barrier; answers go to rc[] for the main thread. */
static void *race_worker(void *p)
{
    race_arg_t *a = p;
    uc__backend_t *b = a->fx->b;
    char key[32], val[32];

    race_val(val, sizeof(val), a->id);
    for (unsigned r = 0; r < RACE_ROUNDS; r++) {
        race_key(key, sizeof(key), r);
        pthread_barrier_wait(a->start);
        if (a->kind == RACE_ADD) {
            a->rc[r] = b->ops->add(b, key, strlen(key), val, strlen(val), 0);
        } else {
            a->rc[r] = b->ops->cas(b, key, strlen(key), "seed", 4, val,
                                   strlen(val), 0);
        }
    }
    return NULL;
}

static void run_race(size_t max_bytes, int kind)
{
    fx_t *fx = fx_new(max_bytes);
    pthread_barrier_t start;
    pthread_t th[RACE_THREADS];
    race_arg_t *args = calloc(RACE_THREADS, sizeof(*args));
    char key[32], val[32];

    assert_non_null(args);
    if (kind == RACE_CAS) {
        for (unsigned r = 0; r < RACE_ROUNDS; r++) {
            race_key(key, sizeof(key), r);
            assert_int_equal(set_s(fx, key, "seed", 0), UC_OK);
        }
    }
    assert_int_equal(pthread_barrier_init(&start, NULL, RACE_THREADS), 0);
    for (unsigned i = 0; i < RACE_THREADS; i++) {
        args[i].fx = fx;
        args[i].start = &start;
        args[i].id = i;
        args[i].kind = kind;
        assert_int_equal(pthread_create(&th[i], NULL, race_worker, &args[i]),
                         0);
    }
    for (unsigned i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    pthread_barrier_destroy(&start);

    for (unsigned r = 0; r < RACE_ROUNDS; r++) {
        unsigned wins = 0, winner = 0;
        for (unsigned i = 0; i < RACE_THREADS; i++) {
            int rc = args[i].rc[r];
            if (rc == UC_OK) {
                wins++;
                winner = i;
            } else if (rc != UC_ESTALE) {
                fail_msg("round %u thread %u: %s", r, i, uc_err_name(rc));
            }
        }
        if (wins != 1) {
            fail_msg("round %u: %u winners, want exactly 1", r, wins);
        }
        /* The key holds the winner's value, not a loser's. */
        race_key(key, sizeof(key), r);
        race_val(val, sizeof(val), winner);
        check_value(fx, key, val);
    }
    assert_int_equal(info_of(fx).keys, RACE_ROUNDS);
    free(args);
    fx_free(fx);
}

static void race_add_one_winner(void **state)
{
    (void)state;
    run_race(0, RACE_ADD);
}

static void race_cas_one_winner(void **state)
{
    (void)state;
    run_race(0, RACE_CAS);
}

typedef struct {
    fx_t *fx;
    unsigned wins;   /* successful increments (RACE_INCREMENTS when done) */
    unsigned stale;  /* cas refused because another thread got there first */
    unsigned errors; /* anything else */
    int first_error;
} incr_arg_t;

/*
 * Increments the decimal counter under "ctr" RACE_INCREMENTS times by
 * reading it with get_max and writing value + 1 with cas, retrying on
 * UC_ESTALE: a lost update would show as a final count below the total.
 */
static void *incr_worker(void *p)
{
    incr_arg_t *a = p;
    uc__backend_t *b = a->fx->b;

    while (a->wins < RACE_INCREMENTS && a->errors == 0) {
        char *cur = NULL;
        size_t len = 0;
        char next[24];
        int n, rc;

        rc = b->ops->get_max(b, "ctr", 3, 20, &cur, &len);
        if (rc != UC_OK) {
            a->errors++;
            a->first_error = rc;
            break;
        }
        n = snprintf(next, sizeof(next), "%lu", strtoul(cur, NULL, 10) + 1);
        rc = b->ops->cas(b, "ctr", 3, cur, len, next, (size_t)n, 0);
        free(cur);
        if (rc == UC_OK) {
            a->wins++;
        } else if (rc == UC_ESTALE) {
            a->stale++;
        } else {
            a->errors++;
            a->first_error = rc;
        }
    }
    return NULL;
}

static void race_cas_counter_loses_no_update(void **state)
{
    fx_t *fx = fx_new(0);
    pthread_t th[RACE_THREADS];
    incr_arg_t args[RACE_THREADS];
    char want[24];
    (void)state;

    memset(args, 0, sizeof(args));
    assert_int_equal(set_s(fx, "ctr", "0", 0), UC_OK);
    for (unsigned i = 0; i < RACE_THREADS; i++) {
        args[i].fx = fx;
        assert_int_equal(pthread_create(&th[i], NULL, incr_worker, &args[i]),
                         0);
    }
    for (unsigned i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    for (unsigned i = 0; i < RACE_THREADS; i++) {
        if (args[i].errors != 0) {
            fail_msg("thread %u: %s", i, uc_err_name(args[i].first_error));
        }
        assert_int_equal(args[i].wins, RACE_INCREMENTS);
    }
    snprintf(want, sizeof(want), "%u", RACE_THREADS * RACE_INCREMENTS);
    check_value(fx, "ctr", want);
    fx_free(fx);
}

/* ---- threads ------------------------------------------------------------ */

#define CT_THREADS 4
#define CT_OPS 20000
#define CT_KEYS 64
#define CT_MAX_TTL_MS 50
/* get_max's cap in the workers: values run from ~20 to ~330 bytes. */
#define CT_READ_MAX 200

typedef struct {
    fx_t *fx;
    unsigned id;
    int ticker; /* advances the clock */
    unsigned long reads;
    unsigned long errors;
    char first_error[160];
} ct_arg_t;

static uint32_t ct_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void ct_fail(ct_arg_t *a, const char *what, const char *key, int rc)
{
    if (a->errors++ == 0) {
        snprintf(a->first_error, sizeof(a->first_error),
                 "thread %u: %s '%s' -> %d", a->id, what, key, rc);
    }
}

static void ct_key(char *buf, size_t n, unsigned k)
{
    snprintf(buf, n, "ct:key:%02u", k);
}

/* "<key>|t=<thread>|s=<seq>|<padding>|end": a reader can check every byte
 * belongs to the key it asked for. */
static size_t ct_value(char *buf, size_t n, const char *key, unsigned t,
                       unsigned seq, unsigned pad)
{
    int len = snprintf(buf, n, "%s|t=%u|s=%u|", key, t, seq);
    size_t p = (size_t)len;
    while (pad-- > 0 && p + 5 < n) {
        buf[p++] = (char)('a' + (seq + pad) % 26);
    }
    memcpy(buf + p, "|end", 5);
    return p + 4;
}

static void ct_check(ct_arg_t *a, const char *key, const char *v, size_t len)
{
    size_t kl = strlen(key);
    a->reads++;
    if (len < kl + 5 || memcmp(v, key, kl) != 0 || v[kl] != '|' ||
        memcmp(v + len - 4, "|end", 4) != 0 || v[len] != '\0' ||
        strlen(v) != len) {
        ct_fail(a, "malformed value for", key, 0);
    }
}

static void *ct_worker(void *p)
{
    ct_arg_t *a = p;
    uc__backend_t *b = a->fx->b;
    uint32_t rs = 0x9e3779b9u * (a->id + 1);
    char key[32], val[400];
    char mk[4][32];
    char mv[4][400];
    const char *mkp[4], *mvp[4];
    size_t mkl[4], mvl[4];

    for (unsigned op = 0; op < CT_OPS; op++) {
        uint32_t r = ct_rand(&rs);
        unsigned k = (r >> 8) % CT_KEYS;
        unsigned pad = (r >> 16) % 300;
        uint64_t ttl = (r & 0x10000000u) ? 0 : 1 + (r >> 24) % CT_MAX_TTL_MS;
        char *v = NULL;
        size_t len = 0;
        int rc;

        ct_key(key, sizeof(key), k);
        if (a->ticker && op % 64 == 0) {
            advance_ms(a->fx, 1);
        }
        switch (r % 16) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4:
            rc = b->ops->get(b, key, strlen(key), &v, &len);
            if (rc == UC_OK) {
                ct_check(a, key, v, len);
                free(v);
            } else if (rc != UC_MISS) {
                ct_fail(a, "get", key, rc);
            }
            break;
        case 5:
        case 6:
        case 7:
            len = ct_value(val, sizeof(val), key, a->id, op, pad);
            rc = b->ops->set(b, key, strlen(key), val, len, ttl);
            if (rc != UC_OK) {
                ct_fail(a, "set", key, rc);
            }
            break;
        case 8:
            rc = b->ops->del(b, key, strlen(key), NULL);
            if (rc != UC_OK) {
                ct_fail(a, "del", key, rc);
            }
            break;
        case 9:
        case 10: {
            uc_value_t out[4];
            for (unsigned i = 0; i < 4; i++) {
                ct_key(mk[i], sizeof(mk[i]), (k + i * 7) % CT_KEYS);
                mkp[i] = mk[i];
                mkl[i] = strlen(mk[i]);
                mvl[i] = ct_value(mv[i], sizeof(mv[i]), mk[i], a->id, op,
                                  pad / (i + 1));
                mvp[i] = mv[i];
            }
            if (r % 16 == 9) {
                rc = b->ops->mget(b, 4, mkp, mkl, out);
                for (unsigned i = 0; rc == UC_OK && i < 4; i++) {
                    if (out[i].status == UC_OK) {
                        ct_check(a, mk[i], out[i].data, out[i].len);
                        free(out[i].data);
                    } else if (out[i].status != UC_MISS) {
                        ct_fail(a, "mget answer", mk[i], out[i].status);
                    }
                }
            } else {
                rc = b->ops->mset(b, 4, mkp, mkl, mvp, mvl, ttl);
            }
            if (rc != UC_OK) {
                ct_fail(a, "mget/mset", mk[0], rc);
            }
            break;
        }
        case 11: {
            /* The backend reads the clock before it locks, so a set that
             * read a later clock can land in between: the bound allows the
             * ticks seen during the call on top of the longest TTL. */
            uint64_t before = atomic_load(&a->fx->now_us);
            int64_t t = 0, slack;
            rc = b->ops->ttl(b, key, strlen(key), &t);
            slack =
                (int64_t)((atomic_load(&a->fx->now_us) - before + 999) / 1000);
            if ((rc != UC_OK && rc != UC_MISS) ||
                (rc == UC_OK && t != -1 &&
                 (t < 1 || t > CT_MAX_TTL_MS + slack))) {
                ct_fail(a, "ttl", key, (int)t);
            }
            rc = b->ops->exists(b, key, strlen(key));
            if (rc != UC_OK && rc != UC_MISS) {
                ct_fail(a, "exists", key, rc);
            }
            break;
        }
        case 12:
            len = ct_value(val, sizeof(val), key, a->id, op, pad);
            rc = b->ops->add(b, key, strlen(key), val, len, ttl);
            if (rc != UC_OK && rc != UC_ESTALE) {
                ct_fail(a, "add", key, rc);
            }
            break;
        case 13: {
            /* Read under a cap that some values exceed, then replace what
             * was read; losing the race to a writer is UC_ESTALE. */
            rc = b->ops->get_max(b, key, strlen(key), CT_READ_MAX, &v, &len);
            if (rc == UC_OK) {
                char nv[400];
                size_t nlen = ct_value(nv, sizeof(nv), key, a->id, op, pad);
                if (len > CT_READ_MAX) {
                    ct_fail(a, "get_max over its cap for", key, (int)len);
                }
                ct_check(a, key, v, len);
                rc = b->ops->cas(b, key, strlen(key), v, len, nv, nlen, ttl);
                free(v);
                if (rc != UC_OK && rc != UC_ESTALE) {
                    ct_fail(a, "cas", key, rc);
                }
            } else if (rc != UC_MISS && rc != UC_ETOOBIG) {
                ct_fail(a, "get_max", key, rc);
            }
            break;
        }
        case 14: {
            uint64_t n = 0;
            rc = b->ops->count_pattern(b, "ct:key:1?", NULL, NULL, &n);
            if (rc != UC_OK || n > 10) {
                ct_fail(a, "count_pattern", "ct:key:1?", (int)n);
            }
            break;
        }
        default:
            if (op % 8 == 0) {
                size_t n = 0;
                rc = b->ops->delete_pattern(b, "ct:key:3?", NULL, NULL, &n);
                if (rc != UC_OK || n > 10) {
                    ct_fail(a, "delete_pattern", "ct:key:3?", (int)n);
                }
            } else {
                uc_server_info_t info;
                rc = b->ops->info(b, &info);
                if (rc != UC_OK || info.used_memory > info.max_memory) {
                    ct_fail(a, "info", "", rc);
                }
            }
            break;
        }
    }
    return NULL;
}

static void run_threads(size_t max_bytes, int expect_evictions)
{
    fx_t *fx = fx_new(max_bytes);
    pthread_t th[CT_THREADS];
    ct_arg_t args[CT_THREADS];
    uc_server_info_t info;
    uint64_t all = 0, ct = 0;
    unsigned long reads = 0;
    size_t removed = 0;

    memset(args, 0, sizeof(args));
    for (unsigned i = 0; i < CT_THREADS; i++) {
        args[i].fx = fx;
        args[i].id = i;
        args[i].ticker = i == 0;
        assert_int_equal(pthread_create(&th[i], NULL, ct_worker, &args[i]), 0);
    }
    for (unsigned i = 0; i < CT_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    for (unsigned i = 0; i < CT_THREADS; i++) {
        if (args[i].errors != 0) {
            fail_msg("%lu errors; first: %s", args[i].errors,
                     args[i].first_error);
        }
        reads += args[i].reads;
    }
    /* Reads did see values, so the format checks did run. */
    assert_true(reads > 1000);

    /* A full count drops what has expired; then the figures must agree. */
    assert_int_equal(fx->b->ops->count_pattern(fx->b, "*", NULL, NULL, &all),
                     UC_OK);
    assert_int_equal(
        fx->b->ops->count_pattern(fx->b, "ct:key:*", NULL, NULL, &ct), UC_OK);
    assert_true(ct <= CT_KEYS);
    assert_int_equal(all, ct); /* add and cas wrote only ct:key:* keys */
    info = info_of(fx);
    assert_int_equal(info.keys, all);
    assert_true(info.used_memory <= info.max_memory);
    if (expect_evictions) {
        assert_true(info.evicted_keys > 0);
    }
    /* Removing everything must bring the byte count back to zero. */
    assert_int_equal(
        fx->b->ops->delete_pattern(fx->b, "*", NULL, NULL, &removed), UC_OK);
    assert_int_equal(removed, all);
    info = info_of(fx);
    assert_int_equal(info.keys, 0);
    assert_int_equal(info.used_memory, 0);
    fx_free(fx);
}

static void concurrent_sharded(void **state)
{
    (void)state;
    run_threads(16 * MIB, 0); /* sixteen shards */
}

static void concurrent_evicting(void **state)
{
    (void)state;
    run_threads(8 * 1024, 1); /* one shard under constant eviction */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_get_miss),
        cmocka_unit_test(binary_keys_and_values),
        cmocka_unit_test(overwrite),
        cmocka_unit_test(ttl_expiry),
        cmocka_unit_test(ttl_values),
        cmocka_unit_test(del_existed),
        cmocka_unit_test(exists_probe),
        cmocka_unit_test(mget_mset),
        cmocka_unit_test(delete_pattern_globs),
        cmocka_unit_test(delete_pattern_filter),
        cmocka_unit_test(count_pattern),
        cmocka_unit_test(lru_eviction_order),
        cmocka_unit_test(expired_go_before_counting_as_evicted),
        cmocka_unit_test(expired_swept_by_writes),
        cmocka_unit_test(too_big),
        cmocka_unit_test(info_figures),
        cmocka_unit_test(many_keys),
        cmocka_unit_test(get_max_table),
        cmocka_unit_test(get_max_large_boundary),
        cmocka_unit_test(add_table),
        cmocka_unit_test(add_ttl),
        cmocka_unit_test(cas_table),
        cmocka_unit_test(cas_ttl_and_chain),
        cmocka_unit_test(race_add_one_winner),
        cmocka_unit_test(race_cas_one_winner),
        cmocka_unit_test(race_cas_counter_loses_no_update),
        cmocka_unit_test(concurrent_sharded),
        cmocka_unit_test(concurrent_evicting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
