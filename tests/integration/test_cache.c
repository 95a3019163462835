/* SPDX-License-Identifier: MIT */
/*
 * The cache's promises through the public API, run twice: on the memory
 * backend and on a real redis-server started for this test. Covers the
 * existing service's cache tests (set/get, miss, TTL expiry, delete, exists,
 * feedback stats, backfill jobs, metrics, get-or-load, pattern delete, hit
 * rate) and what this library adds: hostile field values, validators,
 * stale write-back protection and many threads on one handle.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_server.h"
#include "util.h"
#include "utxocache/utxocache.h"

typedef struct {
    int redis;
    uc_test_redis_t server;
    uc_cache_t *cache;
} fixture_t;

static fixture_t fx;

static uc_cache_t *make_cache(const char *prefix)
{
    uc_config_t cfg = UC_CONFIG_INIT;
    uc_cache_t *c = NULL;
    char err[256];
    size_t n;
    const uc_keyspace_def_t *defs = uc_test_keyspaces(&n);

    if (fx.redis) {
        cfg.backend = UC_BACKEND_REDIS;
        snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
        cfg.port = fx.server.port;
        cfg.command_timeout_ms = 2000;
        cfg.max_connections = 16;
    } else {
        cfg.backend = UC_BACKEND_MEMORY;
    }
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "%s", prefix);
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_int_equal(uc_cache_add_keyspaces(c, defs, n, err, sizeof(err)),
                     UC_OK);
    return c;
}

static int setup_memory(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    return 0;
}

static int setup_redis(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    fx.redis = 1;
    return uc_test_redis_start(&fx.server, NULL);
}

static int teardown_group(void **state)
{
    (void)state;
    if (fx.redis) {
        uc_test_redis_stop(&fx.server);
    }
    return 0;
}

/* Each test gets its own prefix so that counts never see another's keys. */
static int setup_test(void **state)
{
    static int seq;
    char prefix[32];
    (void)state;
    snprintf(prefix, sizeof(prefix), "t%d:", ++seq);
    fx.cache = make_cache(prefix);
    return 0;
}

static int teardown_test(void **state)
{
    (void)state;
    uc_cache_destroy(fx.cache);
    fx.cache = NULL;
    return 0;
}

#define K(s) (s), strlen(s)
/* How long Redis keeps an entry past its TTL for serve-stale (default). */
#define GRACE_MS (86400LL * 1000)

static void set_and_get(void **state)
{
    char *v = NULL;
    size_t len = 0;
    const char bin[] = {'a', '\0', 'b', '\n', (char)0xff};
    (void)state;
    assert_int_equal(uc_cache_set(fx.cache, K("k1"), K("hello"), 0), UC_OK);
    assert_int_equal(uc_cache_get(fx.cache, K("k1"), &v, &len), UC_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(v, "hello", 5);
    assert_int_equal(v[len], '\0');
    uc_free(v);
    assert_int_equal(uc_cache_set(fx.cache, K("bin"), bin, sizeof(bin), 0),
                     UC_OK);
    assert_int_equal(uc_cache_get(fx.cache, K("bin"), &v, &len), UC_OK);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(v, bin, sizeof(bin));
    uc_free(v);
}

static void missing_key(void **state)
{
    char *v = (char *)0x1;
    size_t len = 77;
    (void)state;
    assert_int_equal(uc_cache_get(fx.cache, K("nope"), &v, &len), UC_MISS);
    /* Outputs untouched on a miss. */
    assert_ptr_equal(v, (char *)0x1);
    assert_int_equal(len, 77);
}

static void ttl_expiry(void **state)
{
    int64_t ttl = 0;
    uint64_t deadline;
    (void)state;
    assert_int_equal(uc_cache_set(fx.cache, K("short"), K("v"), 60), UC_OK);
    assert_int_equal(uc_cache_set(fx.cache, K("forever"), K("v"), 0), UC_OK);
    assert_int_equal(uc_cache_ttl(fx.cache, K("forever"), &ttl), UC_OK);
    assert_int_equal(ttl, -1);
    assert_int_equal(uc_cache_ttl(fx.cache, K("short"), &ttl), UC_OK);
    assert_true(ttl >= 0 && ttl <= 60);
    /* Poll instead of sleeping a guessed time; bounded. */
    deadline = uc_test_now_ms() + 3000;
    while (uc_cache_exists(fx.cache, K("short")) == UC_OK &&
           uc_test_now_ms() < deadline) {
        uc_test_sleep_ms(10);
    }
    assert_int_equal(uc_cache_exists(fx.cache, K("short")), UC_MISS);
    char *v;
    size_t len;
    assert_int_equal(uc_cache_get(fx.cache, K("short"), &v, &len), UC_MISS);
    assert_int_equal(uc_cache_ttl(fx.cache, K("short"), &ttl), UC_MISS);
    assert_int_equal(uc_cache_exists(fx.cache, K("forever")), UC_OK);
}

static void delete_and_exists(void **state)
{
    int existed = -1;
    (void)state;
    assert_int_equal(uc_cache_exists(fx.cache, K("d")), UC_MISS);
    assert_int_equal(uc_cache_set(fx.cache, K("d"), K("x"), 10000), UC_OK);
    assert_int_equal(uc_cache_exists(fx.cache, K("d")), UC_OK);
    assert_int_equal(uc_cache_del(fx.cache, K("d"), &existed), UC_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(uc_cache_exists(fx.cache, K("d")), UC_MISS);
    assert_int_equal(uc_cache_del(fx.cache, K("d"), &existed), UC_OK);
    assert_int_equal(existed, 0);
}

/* Caches a value in keyspace `name`, reads it back, invalidates it. */
static void keyspace_roundtrip(const char *name, const char *const *fields,
                               size_t n, const char *json)
{
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, name);
    char *v;
    size_t len;
    size_t removed = 99;

    assert_non_null(ks);
    assert_int_equal(uc_keyspace_set(ks, fields, n, K(json)), UC_OK);
    assert_int_equal(uc_keyspace_get(ks, fields, n, &v, &len), UC_OK);
    assert_string_equal(v, json);
    uc_free(v);
    assert_int_equal(uc_keyspace_invalidate(ks, fields, n, &removed), UC_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(uc_keyspace_get(ks, fields, n, &v, &len), UC_MISS);
}

static void feedback_stats(void **state)
{
    const char *f[] = {"insight-123"};
    char key[200];
    size_t klen;
    int64_t ttl;
    (void)state;
    keyspace_roundtrip("feedback_stats", f, 1,
                       "{\"insight_id\":\"insight-123\",\"total_ratings\":3}");
    /* The key has the existing service's shape and its TTL (1 h). */
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, "feedback_stats");
    assert_int_equal(uc_keyspace_key(ks, f, 1, key, sizeof(key), &klen), UC_OK);
    assert_string_equal(key, "feedback:stats:insight-123");
    assert_int_equal(uc_keyspace_set(ks, f, 1, K("{}")), UC_OK);
    assert_int_equal(uc_cache_ttl(fx.cache, key, klen, &ttl), UC_OK);
    /* Redis keeps it for the serve-stale grace (1 day) past its TTL. */
    assert_true(ttl > GRACE_MS + 3590000 && ttl <= GRACE_MS + 3600000);
}

static void backfill_job(void **state)
{
    const char *f[] = {"7d6f0b7e-1c2a-4c1e-9f3e-2b1a0c9d8e7f"};
    char key[200];
    size_t klen;
    int64_t ttl;
    (void)state;
    keyspace_roundtrip("backfill_job", f, 1, "{\"status\":\"running\"}");
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, "backfill_job");
    assert_int_equal(uc_keyspace_set(ks, f, 1, K("{}")), UC_OK);
    assert_int_equal(uc_keyspace_key(ks, f, 1, key, sizeof(key), &klen), UC_OK);
    assert_int_equal(uc_cache_ttl(fx.cache, key, klen, &ttl), UC_OK);
    assert_true(ttl > GRACE_MS + 290000 && ttl <= GRACE_MS + 300000);
}

static void metrics(void **state)
{
    const char *recent[] = {"api", "latency"};
    const char *agg[] = {"api", "latency", "hour", "1700000000", "1700003600"};
    uc_keyspace_t *rks, *aks;
    size_t removed;
    char *v;
    size_t len;
    (void)state;
    keyspace_roundtrip("recent_metrics", recent, 2, "[1,2,3]");
    keyspace_roundtrip("aggregated_metrics", agg, 5, "{\"data\":[]}");

    /* Invalidate "recent metrics of service api" leaves other services and
     * the aggregates alone. */
    rks = uc_cache_keyspace(fx.cache, "recent_metrics");
    aks = uc_cache_keyspace(fx.cache, "aggregated_metrics");
    const char *r2[] = {"api", "cpu"};
    const char *r3[] = {"web", "latency"};
    assert_int_equal(uc_keyspace_set(rks, recent, 2, K("a")), UC_OK);
    assert_int_equal(uc_keyspace_set(rks, r2, 2, K("b")), UC_OK);
    assert_int_equal(uc_keyspace_set(rks, r3, 2, K("c")), UC_OK);
    assert_int_equal(uc_keyspace_set(aks, agg, 5, K("d")), UC_OK);
    const char *api_any[] = {"api", NULL};
    assert_int_equal(uc_keyspace_invalidate(rks, api_any, 2, &removed), UC_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(uc_keyspace_get(rks, r3, 2, &v, &len), UC_OK);
    uc_free(v);
    assert_int_equal(uc_keyspace_get(aks, agg, 5, &v, &len), UC_OK);
    uc_free(v);
    /* Everything of a keyspace. */
    const char *all[] = {NULL, NULL, NULL, NULL, NULL};
    assert_int_equal(uc_keyspace_invalidate(aks, all, 5, &removed), UC_OK);
    assert_int_equal(removed, 1);
    uint64_t count = 9;
    assert_int_equal(uc_keyspace_count(rks, &count), UC_OK);
    assert_int_equal(count, 1);
}

typedef struct {
    int calls;
    const char *value;
    int fail_with;
    uc_keyspace_t *invalidate; /* simulate a write while loading */
    const char *const *inv_fields;
    size_t inv_n;
    /* What the invalidation inside the loader returned: the test asserts
     * it afterwards, since a cmocka assert must not longjmp out of the
     * library frames the loader runs in. */
    int inv_rc;
} loader_t;

static int load(void *arg, char **val, size_t *len)
{
    loader_t *l = arg;
    l->calls++;
    if (l->invalidate != NULL) {
        /* A writer commits and invalidates while this loader holds the
         * old row: deterministic, since it runs inside the loader. */
        l->inv_rc = uc_keyspace_invalidate(l->invalidate, l->inv_fields,
                                           l->inv_n, NULL);
    }
    if (l->fail_with != 0) {
        return l->fail_with;
    }
    *len = strlen(l->value);
    *val = malloc(*len);
    memcpy(*val, l->value, *len);
    return UC_OK;
}

static void get_or_load_hit_and_miss(void **state)
{
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, "feedback_stats");
    const char *f[] = {"i1"};
    loader_t l = {0, "{\"from\":\"db\"}", 0, NULL, NULL, 0, 0};
    uc_source_t src;
    char *v, key[100];
    size_t len, klen;
    int64_t ttl;
    (void)state;

    /* Miss: loader called once, value written back with the TTL. */
    assert_int_equal(
        uc_test_get_or_load(ks, f, 1, load, &l, NULL, NULL, &v, &len, &src),
        UC_OK);
    assert_int_equal(l.calls, 1);
    assert_int_equal(src, UC_FROM_LOADER);
    assert_string_equal(v, "{\"from\":\"db\"}");
    uc_free(v);
    uc_keyspace_key(ks, f, 1, key, sizeof(key), &klen);
    assert_int_equal(uc_cache_ttl(fx.cache, key, klen, &ttl), UC_OK);
    /* A fill's TTL is jittered by +-10 %, plus the serve-stale grace. */
    assert_true(ttl > GRACE_MS + 3240000 && ttl <= GRACE_MS + 3960000);

    /* Hit: loader not called. */
    l.value = "{\"from\":\"changed\"}";
    assert_int_equal(
        uc_test_get_or_load(ks, f, 1, load, &l, NULL, NULL, &v, &len, &src),
        UC_OK);
    assert_int_equal(l.calls, 1);
    assert_int_equal(src, UC_FROM_CACHE);
    assert_string_equal(v, "{\"from\":\"db\"}");
    uc_free(v);
}

static void get_or_load_loader_error(void **state)
{
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, "backfill_job");
    const char *f[] = {"job"};
    loader_t l = {0, NULL, -1234, NULL, NULL, 0, 0};
    char *v = NULL;
    size_t len;
    uc_stats_t st;
    (void)state;
    assert_int_equal(
        uc_test_get_or_load(ks, f, 1, load, &l, NULL, NULL, &v, &len, NULL),
        -1234);
    assert_null(v);
    uc_keyspace_stats(ks, &st);
    assert_int_equal(st.load_errors, 1);
}

static int valid_json_object(void *arg, const char *val, size_t len)
{
    (void)arg;
    return len >= 2 && val[0] == '{' && val[len - 1] == '}';
}

static void get_or_load_corrupt_value(void **state)
{
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, "feedback_stats");
    const char *f[] = {"corrupt"};
    loader_t l = {0, "{\"ok\":1}", 0, NULL, NULL, 0, 0};
    uc_source_t src;
    char *v;
    size_t len;
    uc_stats_t st;
    (void)state;
    assert_int_equal(uc_keyspace_set(ks, f, 1, K("{trunc")), UC_OK);
    assert_int_equal(uc_test_get_or_load(ks, f, 1, load, &l, valid_json_object,
                                         NULL, &v, &len, &src),
                     UC_OK);
    assert_int_equal(l.calls, 1);
    assert_int_equal(src, UC_FROM_LOADER);
    assert_string_equal(v, "{\"ok\":1}");
    uc_free(v);
    uc_keyspace_stats(ks, &st);
    assert_int_equal(st.corrupt, 1);
    /* The corrupt value was replaced by the loaded one. */
    assert_int_equal(uc_keyspace_get(ks, f, 1, &v, &len), UC_OK);
    assert_string_equal(v, "{\"ok\":1}");
    uc_free(v);
}

static void stale_write_back_refused(void **state)
{
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, "feedback_stats");
    uc_keyspace_t *rks = uc_cache_keyspace(fx.cache, "recent_metrics");
    const char *f[] = {"race"};
    loader_t l = {0, "{\"old\":true}", 0, ks, f, 1, 0};
    char *v;
    size_t len;
    uc_stats_t st;
    uc_source_t src;
    (void)state;
    /* The loader returns the old row, but the entry was invalidated while it
     * ran: the caller gets the value, the cache does not keep it. */
    assert_int_equal(
        uc_test_get_or_load(ks, f, 1, load, &l, NULL, NULL, &v, &len, &src),
        UC_OK);
    assert_int_equal(l.inv_rc, UC_OK);
    assert_string_equal(v, "{\"old\":true}");
    uc_free(v);
    assert_int_equal(uc_keyspace_get(ks, f, 1, &v, &len), UC_MISS);
    uc_keyspace_stats(ks, &st);
    assert_int_equal(st.stale_rejects, 1);

    /* The same for a pattern invalidation of the keyspace. */
    const char *rf[] = {"svc", "cpu"};
    const char *any[] = {"svc", NULL};
    loader_t l2 = {0, "[old]", 0, rks, any, 2, 0};
    assert_int_equal(
        uc_test_get_or_load(rks, rf, 2, load, &l2, NULL, NULL, &v, &len, &src),
        UC_OK);
    assert_int_equal(l2.inv_rc, UC_OK);
    uc_free(v);
    assert_int_equal(uc_keyspace_get(rks, rf, 2, &v, &len), UC_MISS);

    /* Without a write in between, the next load is stored. */
    loader_t l3 = {0, "{\"new\":true}", 0, NULL, NULL, 0, 0};
    assert_int_equal(
        uc_test_get_or_load(ks, f, 1, load, &l3, NULL, NULL, &v, &len, &src),
        UC_OK);
    uc_free(v);
    assert_int_equal(uc_keyspace_get(ks, f, 1, &v, &len), UC_OK);
    assert_string_equal(v, "{\"new\":true}");
    uc_free(v);
}

static void pattern_delete_exact(void **state)
{
    size_t removed = 0;
    char key[32];
    uint64_t count = 0;
    (void)state;
    for (int i = 0; i < 1200; i++) {
        snprintf(key, sizeof(key), "user:%d:profile", i);
        assert_int_equal(uc_cache_set(fx.cache, K(key), K("p"), 60000), UC_OK);
    }
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "other:%d", i);
        assert_int_equal(uc_cache_set(fx.cache, K(key), K("o"), 60000), UC_OK);
    }
    assert_int_equal(
        uc_cache_delete_pattern(fx.cache, "user:1*:profile", &removed), UC_OK);
    /* user:1, user:10-19, user:100-199, user:1000-1199 */
    assert_int_equal(removed, 1 + 10 + 100 + 200);
    assert_int_equal(uc_cache_count_pattern(fx.cache, "user:*", &count), UC_OK);
    assert_int_equal(count, 1200 - 311);
    assert_int_equal(uc_cache_count_pattern(fx.cache, "other:*", &count),
                     UC_OK);
    assert_int_equal(count, 30);
    assert_int_equal(uc_cache_delete_pattern(fx.cache, "nothing:*", &removed),
                     UC_OK);
    assert_int_equal(removed, 0);
}

static void hostile_fields_stay_in_their_entry(void **state)
{
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, "feedback_stats");
    uc_keyspace_t *bks = uc_cache_keyspace(fx.cache, "backfill_job");
    char longv[UC_FIELD_MAX + 1];
    const char *hostile[] = {"*",  "?",  "[",   "]",   "\\",      ":",   "a b",
                             "a*", "a?", "[a]", "x:*", "stats:*", "%2A", longv};
    const char *victims[] = {"a", "ab", "abc", "x", "x:y"};
    size_t nh = sizeof(hostile) / sizeof(hostile[0]);
    size_t nv = sizeof(victims) / sizeof(victims[0]);
    char *v;
    size_t len, removed;
    (void)state;
    memset(longv, 'z', UC_FIELD_MAX);
    longv[UC_FIELD_MAX] = '\0';

    for (size_t i = 0; i < nv; i++) {
        const char *f[] = {victims[i]};
        assert_int_equal(uc_keyspace_set(ks, f, 1, K(victims[i])), UC_OK);
    }
    const char *job[] = {"j1"};
    assert_int_equal(uc_keyspace_set(bks, job, 1, K("job")), UC_OK);

    for (size_t i = 0; i < nh; i++) {
        const char *f[] = {hostile[i]};
        /* A hostile id is its own entry: a miss, then its own value. */
        assert_int_equal(uc_keyspace_get(ks, f, 1, &v, &len), UC_MISS);
        assert_int_equal(uc_keyspace_set(ks, f, 1, K(hostile[i])), UC_OK);
        assert_int_equal(uc_keyspace_get(ks, f, 1, &v, &len), UC_OK);
        assert_string_equal(v, hostile[i]);
        uc_free(v);
        /* Invalidating it removes exactly one key: itself. */
        assert_int_equal(uc_keyspace_invalidate(ks, f, 1, &removed), UC_OK);
        assert_int_equal(removed, 1);
    }
    /* Every victim and the other keyspace's entry still hold their own. */
    for (size_t i = 0; i < nv; i++) {
        const char *f[] = {victims[i]};
        assert_int_equal(uc_keyspace_get(ks, f, 1, &v, &len), UC_OK);
        assert_string_equal(v, victims[i]);
        uc_free(v);
    }
    assert_int_equal(uc_keyspace_get(bks, job, 1, &v, &len), UC_OK);
    uc_free(v);
    /* Over-long and control-byte ids are refused, not truncated. */
    char too_long[UC_FIELD_MAX + 2];
    memset(too_long, 'z', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    const char *bad[] = {too_long};
    assert_int_equal(uc_keyspace_set(ks, bad, 1, K("x")), UC_EINVAL);
    const char *ctl[] = {"a\r\nDEL *"};
    assert_int_equal(uc_keyspace_invalidate(ks, ctl, 1, &removed), UC_EINVAL);
}

/* Reads "h0".."h<n-1>" through the loader; every read must succeed. */
static void read_h_keys(uc_keyspace_t *ks, loader_t *l, int n)
{
    char id[16];

    for (int i = 0; i < n; i++) {
        char *v;
        size_t len;
        snprintf(id, sizeof(id), "h%d", i);
        const char *f[] = {id};
        assert_int_equal(
            uc_test_get_or_load(ks, f, 1, load, l, NULL, NULL, &v, &len, NULL),
            UC_OK);
        uc_free(v);
    }
}

static void hit_rate_accounting(void **state)
{
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, "feedback_stats");
    char id[16];
    uc_stats_t st;
    loader_t l = {0, "{}", 0, NULL, NULL, 0, 0};
    (void)state;
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "h%d", i);
        const char *f[] = {id};
        assert_int_equal(uc_keyspace_set(ks, f, 1, K("{}")), UC_OK);
    }
    read_h_keys(ks, &l, 10);
    uc_keyspace_stats(ks, &st);
    assert_int_equal(st.hits, 5);
    assert_int_equal(st.misses, 5);
    assert_int_equal(st.loads, 5);
    assert_true(uc_stats_hit_rate(&st) > 0.4999 &&
                uc_stats_hit_rate(&st) < 0.5001);
    /* The misses were written back: a second pass is all hits. */
    read_h_keys(ks, &l, 10);
    uc_stats_t st2;
    uc_keyspace_stats(ks, &st2);
    assert_int_equal(st2.hits - st.hits, 10);
    assert_int_equal(st2.misses - st.misses, 0);
    assert_int_equal(l.calls, 5);
    assert_true(uc_stats_hit_rate(&st2) > 0.7499 &&
                uc_stats_hit_rate(&st2) < 0.7501);
    assert_true(uc_stats_percentile_us(st2.get_us, 0.99) > 0);
}

static void multi_get_set(void **state)
{
    const char *keys[] = {"m1", "m2", "m3", "m4"};
    size_t klens[] = {2, 2, 2, 2};
    const char *vals[] = {"one", "two"};
    size_t vlens[] = {3, 3};
    uc_value_t out[4];
    (void)state;
    assert_int_equal(
        uc_cache_mset(fx.cache, 2, keys, klens, vals, vlens, 60000), UC_OK);
    assert_int_equal(uc_cache_set(fx.cache, K("m4"), K("four"), 0), UC_OK);
    assert_int_equal(uc_cache_mget(fx.cache, 4, keys, klens, out), UC_OK);
    assert_int_equal(out[0].status, UC_OK);
    assert_memory_equal(out[0].data, "one", 3);
    assert_int_equal(out[1].status, UC_OK);
    assert_memory_equal(out[1].data, "two", 3);
    assert_int_equal(out[2].status, UC_MISS);
    assert_int_equal(out[3].status, UC_OK);
    assert_int_equal(out[3].len, 4);
    assert_memory_equal(out[3].data, "four", 4);
    uc_values_release(out, 4);
}

/* ---- many threads on one handle (also run under TSan) ---- */

typedef struct {
    int id;
    int errors;
    int wrong;
} worker_t;

static int load_for_id(void *arg, char **val, size_t *len)
{
    const char *id = arg;
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "{\"id\":\"%s\"}", id);
    *val = malloc((size_t)n);
    if (*val == NULL) {
        return UC_ENOMEM;
    }
    memcpy(*val, buf, (size_t)n);
    *len = (size_t)n;
    return UC_OK;
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    uc_keyspace_t *ks = uc_cache_keyspace(fx.cache, "feedback_stats");
    unsigned seed = (unsigned)w->id * 7919u;

    for (int i = 0; i < 400; i++) {
        char id[16], want[64];
        char *v;
        size_t len;
        seed = seed * 1103515245u + 12345u;
        snprintf(id, sizeof(id), "n%u", (seed >> 16) % 20);
        const char *f[] = {id};
        if ((seed >> 8) % 10 == 0) {
            if (uc_keyspace_invalidate(ks, f, 1, NULL) != UC_OK) {
                w->errors++;
            }
            continue;
        }
        if (uc_test_get_or_load(ks, f, 1, load_for_id, id, NULL, NULL, &v, &len,
                                NULL) != UC_OK) {
            w->errors++;
            continue;
        }
        snprintf(want, sizeof(want), "{\"id\":\"%s\"}", id);
        if (strlen(want) != len || memcmp(v, want, len) != 0) {
            w->wrong++;
        }
        uc_free(v);
    }
    return NULL;
}

static void threads_share_one_handle(void **state)
{
    pthread_t t[8];
    worker_t w[8];
    uc_stats_t st;
    (void)state;
    for (int i = 0; i < 8; i++) {
        w[i] = (worker_t){i + 1, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].errors, 0);
        assert_int_equal(w[i].wrong, 0);
    }
    uc_keyspace_stats(uc_cache_keyspace(fx.cache, "feedback_stats"), &st);
    assert_true(st.hits > 0);
    assert_int_equal(st.errors, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_test, teardown_test)

static const struct CMUnitTest tests[] = {
    T(set_and_get),
    T(missing_key),
    T(ttl_expiry),
    T(delete_and_exists),
    T(feedback_stats),
    T(backfill_job),
    T(metrics),
    T(get_or_load_hit_and_miss),
    T(get_or_load_loader_error),
    T(get_or_load_corrupt_value),
    T(stale_write_back_refused),
    T(pattern_delete_exact),
    T(hostile_fields_stay_in_their_entry),
    T(hit_rate_accounting),
    T(multi_get_set),
    T(threads_share_one_handle),
};

/* Redis unreachable: get-or-load answers from the loader, without error. */
static void unreachable_redis_falls_back(void **state)
{
    uc_config_t cfg = UC_CONFIG_INIT;
    uc_cache_t *c;
    char err[256];
    size_t n;
    const uc_keyspace_def_t *defs = uc_test_keyspaces(&n);
    (void)state;
    cfg.backend = UC_BACKEND_REDIS;
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = uc_test_free_port();
    cfg.connect_timeout_ms = 200;
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_int_equal(uc_cache_add_keyspaces(c, defs, n, err, sizeof(err)),
                     UC_OK);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "feedback_stats");
    for (int i = 0; i < 10; i++) {
        const char *f[] = {"x"};
        loader_t l = {0, "{\"db\":1}", 0, NULL, NULL, 0, 0};
        uc_source_t src;
        char *v;
        size_t len;
        assert_int_equal(
            uc_test_get_or_load(ks, f, 1, load, &l, NULL, NULL, &v, &len, &src),
            UC_OK);
        assert_int_equal(src, UC_FROM_FALLBACK);
        assert_int_equal(l.calls, 1);
        assert_string_equal(v, "{\"db\":1}");
        uc_free(v);
    }
    uc_stats_t st;
    uc_keyspace_stats(ks, &st);
    assert_int_equal(st.fallbacks, 10);
    uc_cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(unreachable_redis_falls_back),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("memory", tests, setup_memory,
                                          teardown_group);
    failed += cmocka_run_group_tests_name("redis", tests, setup_redis,
                                          teardown_group);
    failed += cmocka_run_group_tests_name("unreachable", alone, NULL, NULL);
    return failed;
}
