/* SPDX-License-Identifier: MIT */
/*
 * The near cache and stampede control against a real redis-server, with two
 * cache handles standing for two service instances:
 *
 *   - hits come from the near cache once the channel is proven, with the
 *     same bytes each time (no copy);
 *   - an invalidation on one instance reaches the other's near cache within
 *     the invalidation lag; the writer's own copy goes before it returns;
 *   - a FLUSHALL, a killed subscriber and a stopped Redis each end near
 *     hits within the bound (1 s);
 *   - concurrent cold reads share one load, in one process and across two;
 *     a lease whose holder died is taken over after about a second, and a
 *     holder slower than that loses its store to the taker;
 *   - serve-stale on a failing loader, never after an invalidation;
 *     remembered "not found"; early refresh; TTL jitter;
 *   - with the keyspace's own loader, loads nobody needs to wait for run in
 *     the background: a fill past the soft timeout answers stale while it
 *     goes on (its joiners and the other instance too, until a write), an
 *     early refresh answers with the current value, and one instance's
 *     refresh keeps the other from refreshing the same entry.
 *
 * The loader stands for the database: a version counter that a "write"
 * bumps, so a read that returns an older version than the last write
 * acknowledged before the read began is a stale read.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "redis_fixture.h"
#include "util.h"

typedef struct db db_t;
static int load(void *arg, const char *const *fields, size_t nfields,
                char **val, size_t *len);
/* The database behind the keyspaces that name their own loader. */
static db_t *own_db(void);

static uc_keyspace_def_t defs[] = {
    {.name = "stats", .pattern = "stats:{id}", .ttl_s = 600},
    {.name = "short",
     .pattern = "short:{id}",
     .ttl_s = 1,
     .jitter_pct = UC_KEYSPACE_NONE},
    {.name = "job", .pattern = "job:{id}", .ttl_s = 600, .negative_ttl_s = 2},
    {.name = "early",
     .pattern = "early:{id}",
     .ttl_s = 2,
     .jitter_pct = UC_KEYSPACE_NONE,
     .refresh_beta = 4.0},
    /* loader and loader_arg: filled in by open_one() */
    {.name = "own",
     .pattern = "own:{id}",
     .ttl_s = 1,
     .jitter_pct = UC_KEYSPACE_NONE,
     .refresh_beta = -1.0},
    {.name = "ownearly",
     .pattern = "ownearly:{id}",
     .ttl_s = 60,
     .jitter_pct = UC_KEYSPACE_NONE,
     .refresh_beta = 1e6},
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

/* ---- the "database" ------------------------------------------------------ */

struct db {
    _Atomic int version;
    _Atomic int calls;
    _Atomic int fail;     /* nonzero: the loader fails */
    _Atomic int missing;  /* nonzero: the entity does not exist */
    _Atomic int gate;     /* nonzero: loads wait (at most 5 s) until 0 */
    _Atomic int inflight; /* loads running now */
    unsigned sleep_ms;
};

static db_t the_own_db;
static db_t *own_db(void)
{
    return &the_own_db;
}

static int load(void *arg, const char *const *fields, size_t nfields,
                char **val, size_t *len)
{
    db_t *db = arg;
    char buf[64];
    (void)fields;
    (void)nfields;

    atomic_fetch_add(&db->calls, 1);
    /* The version is read first, as a query would: a write after this point
     * is one this load may miss. */
    int v = atomic_load(&db->version);
    atomic_fetch_add(&db->inflight, 1);
    if (db->sleep_ms > 0) {
        uc_test_sleep_ms(db->sleep_ms);
    }
    for (int i = 0; i < 5000 && atomic_load(&db->gate); i++) {
        uc_test_sleep_ms(1);
    }
    atomic_fetch_sub(&db->inflight, 1);
    if (atomic_load(&db->fail)) {
        return -1000;
    }
    if (atomic_load(&db->missing)) {
        return UC_MISS;
    }
    int n = snprintf(buf, sizeof(buf), "v%d", v);
    *val = malloc((size_t)n + 1);
    if (*val == NULL) {
        return UC_ENOMEM;
    }
    memcpy(*val, buf, (size_t)n + 1);
    *len = (size_t)n;
    return UC_OK;
}

typedef struct {
    int rc;
    uc_source_t source;
    uc_tier_t tier;
    int version; /* -1 when no value */
} read_t;

static read_t rd(uc_cache_t *c, const char *ks, const char *id, db_t *db)
{
    uc_load_opts_t o = UC_LOAD_OPTS_INIT;
    uc_load_result_t r;
    const char *f[1] = {id};
    read_t out = {0, 0, 0, -1};

    /* NULL: the keyspace's own loader */
    o.loader = db != NULL ? load : NULL;
    o.loader_arg = db;
    out.rc = uc_keyspace_get_or_load(uc_cache_keyspace(c, ks), f, 1, &o, &r);
    if (out.rc == UC_OK) {
        out.source = r.source;
        out.tier = r.tier;
        out.version = atoi(r.data + 1);
        uc_free(r.data);
    }
    return out;
}

/* A write: the database changes, then the entry is invalidated. */
static void write_db(uc_cache_t *c, const char *ks, const char *id, db_t *db)
{
    const char *f[1] = {id};
    atomic_fetch_add(&db->version, 1);
    (void)uc_keyspace_invalidate(uc_cache_keyspace(c, ks), f, 1, NULL);
}

/* ---- fixture ------------------------------------------------------------- */

typedef struct {
    uc_test_fixture_t *f;
    uc_cache_t *a, *b;
} two_t;

static uc_cache_t *open_one(uc_test_fixture_t *f)
{
    uc_config_t cfg;
    char err[256];
    uc_cache_t *c;

    uc_test_redis_config(&cfg, f->r.port);
    cfg.command_timeout_ms = 200;
    cfg.breaker_threshold = 1000;
    for (size_t i = 0; i < NDEFS; i++) {
        if (strncmp(defs[i].name, "own", 3) == 0) {
            defs[i].loader = load;
            defs[i].loader_arg = own_db();
        }
    }
    c = uc_test_open_cache(&cfg);
    assert_int_equal(uc_cache_add_keyspaces(c, defs, NDEFS, err, sizeof(err)),
                     UC_OK);
    return c;
}

static int healthy(uc_cache_t *c)
{
    uc_near_stats_t ns;
    uc_cache_near_stats(c, &ns);
    return ns.channel == UC_CHANNEL_HEALTHY;
}

/* Waits (bounded) until the channel is proven. */
static void wait_healthy(uc_cache_t *c, unsigned ms)
{
    uint64_t until = uc_test_now_ms() + ms;
    while (!healthy(c) && uc_test_now_ms() < until) {
        uc_test_sleep_ms(5);
    }
    assert_true(healthy(c));
}

/* Reads until a read comes from the near cache (bounded). */
static read_t read_until_near(uc_cache_t *c, const char *ks, const char *id,
                              db_t *db)
{
    read_t r = {0, 0, 0, -1};
    for (int i = 0; i < 200; i++) {
        r = rd(c, ks, id, db);
        if (r.rc == UC_OK && r.tier == UC_TIER_NEAR) {
            return r;
        }
        uc_test_sleep_ms(2);
    }
    fail_msg("no near hit after 200 reads (last tier %d, rc %d)", r.tier, r.rc);
    return r;
}

static int setup(void **state)
{
    two_t *t = calloc(1, sizeof(*t));
    if (t == NULL || uc_test_fixture_setup((void **)&t->f) != 0) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    two_t *t = *state;
    uc_cache_destroy(t->a);
    uc_cache_destroy(t->b);
    void *f = t->f;
    free(t);
    return uc_test_fixture_teardown(&f);
}

/* Each test gets a fresh server, two handles and a proven channel. */
static two_t *start(void **state)
{
    two_t *t = *state;
    uc_test_fixture_start(t->f, NULL);
    memset(own_db(), 0, sizeof(db_t));
    t->a = open_one(t->f);
    t->b = open_one(t->f);
    wait_healthy(t->a, 3000);
    wait_healthy(t->b, 3000);
    /* Both have adopted the dataset before the test's reads (two handles
     * meeting a fresh server at the same instant may each drop what the
     * other wrote, which is the dataset rule, not what is tested here). */
    db_t warm = {0};
    assert_int_equal(rd(t->a, "stats", "warm-up", &warm).rc, UC_OK);
    assert_int_equal(rd(t->b, "stats", "warm-up", &warm).rc, UC_OK);
    return t;
}

/* ---- near hits ----------------------------------------------------------- */

static void test_near_hits_share_bytes(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_load_opts_t o = UC_LOAD_OPTS_INIT;
    uc_load_result_t r1, r2;
    const char *f[1] = {"x"};
    uc_stats_t st;

    read_t r = rd(t->a, "stats", "x", &db);
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.source, UC_FROM_LOADER);
    read_until_near(t->a, "stats", "x", &db);
    assert_int_equal(atomic_load(&db.calls), 1);

    /* Shared results: two hits are the same bytes, not two copies. */
    o.loader = load;
    o.loader_arg = &db;
    o.flags = UC_LOAD_SHARED;
    uc_keyspace_t *ks = uc_cache_keyspace(t->a, "stats");
    assert_int_equal(uc_keyspace_get_or_load(ks, f, 1, &o, &r1), UC_OK);
    assert_int_equal(uc_keyspace_get_or_load(ks, f, 1, &o, &r2), UC_OK);
    assert_int_equal(r1.tier, UC_TIER_NEAR);
    assert_ptr_equal(r1.data, r2.data);
    assert_string_equal(r1.data, "v0");
    uc_shared_release(r1.data);
    uc_shared_release(r2.data);

    uc_keyspace_stats(ks, &st);
    assert_true(st.near_hits >= 3);
    assert_true(st.hits >= st.near_hits);
    uc_near_usage_t u;
    uc_keyspace_near_usage(ks, &u);
    assert_true(u.entries >= 1);
    assert_true(u.bytes > 0 && u.bytes <= u.budget_bytes);
}

/* ---- coherence ------------------------------------------------------------
 */

static void test_other_instance_sees_write(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uint64_t worst = 0;

    for (int round = 0; round < 20; round++) {
        read_until_near(t->a, "stats", "x", &db);
        read_until_near(t->b, "stats", "x", &db);
        int want = atomic_load(&db.version) + 1;
        write_db(t->b, "stats", "x", &db);
        /* The writer's own next read is new at once. */
        assert_int_equal(rd(t->b, "stats", "x", &db).version, want);
        uint64_t t0 = uc_test_now_us();
        read_t r;
        do {
            r = rd(t->a, "stats", "x", &db);
        } while (r.version != want && uc_test_now_us() - t0 < 2000000);
        assert_int_equal(r.version, want);
        uint64_t lag = uc_test_now_us() - t0;
        worst = lag > worst ? lag : worst;
    }
    printf("FIGURE near_cross_instance_stale_us_max %llu\n",
           (unsigned long long)worst);
    /* Healthy loopback: milliseconds (the target is p99 5 ms; this is the
     * worst of 20 on a shared machine, so the bound here is loose). */
    assert_true(worst < 100000);
}

static void test_flushall_flushes_near(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_near_stats_t ns;
    char out[64];

    read_until_near(t->a, "stats", "x", &db);
    atomic_fetch_add(&db.version, 1); /* a write whose delete was lost */
    assert_int_equal(
        uc_test_redis_cli(&t->f->r, NULL, "FLUSHALL", out, sizeof(out)), 0);
    uint64_t t0 = uc_test_now_ms();
    read_t r;
    do {
        r = rd(t->a, "stats", "x", &db);
    } while (r.version != 1 && uc_test_now_ms() - t0 < 2000);
    assert_int_equal(r.version, 1);
    assert_true(uc_test_now_ms() - t0 < 1000);
    uc_cache_near_stats(t->a, &ns);
    assert_true(ns.flushes_null + ns.flushes_dataset >= 1);
}

static void test_killed_subscriber(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_near_stats_t ns;
    char out[64];

    read_until_near(t->a, "stats", "x", &db);
    assert_int_equal(uc_test_redis_cli(&t->f->r, NULL,
                                       "CLIENT KILL TYPE pubsub", out,
                                       sizeof(out)),
                     0);
    /* A write right after: its message cannot reach the killed channels. */
    write_db(t->b, "stats", "x", &db);
    uint64_t t0 = uc_test_now_ms();
    read_t r;
    do {
        r = rd(t->a, "stats", "x", &db);
    } while (r.version != 1 && uc_test_now_ms() - t0 < 3000);
    assert_int_equal(r.version, 1);
    printf("FIGURE near_killed_subscriber_stale_ms %llu\n",
           (unsigned long long)(uc_test_now_ms() - t0));
    assert_true(uc_test_now_ms() - t0 <= 1000);
    uc_cache_near_stats(t->a, &ns);
    assert_true(ns.flushes_lost + ns.flushes_heartbeat >= 1);
    /* And the channel comes back on its own. */
    wait_healthy(t->a, 5000);
    read_until_near(t->a, "stats", "x", &db);
}

static void test_stopped_redis(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_near_stats_t ns;
    uint64_t last_old = 0, t0;

    read_until_near(t->a, "stats", "x", &db);
    assert_int_equal(uc_test_redis_signal(&t->f->r, SIGSTOP), 0);
    t0 = uc_test_now_ms();
    /* The write's delete cannot reach Redis; nothing tells instance a. */
    atomic_fetch_add(&db.version, 1);
    while (uc_test_now_ms() - t0 < 1500) {
        read_t r = rd(t->a, "stats", "x", &db);
        assert_int_equal(r.rc, UC_OK);
        if (r.version == 0) {
            last_old = uc_test_now_ms() - t0;
        }
    }
    assert_int_equal(uc_test_redis_signal(&t->f->r, SIGCONT), 0);
    printf("FIGURE near_stopped_redis_stale_ms %llu\n",
           (unsigned long long)last_old);
    assert_true(last_old <= 1000);
    uc_cache_near_stats(t->a, &ns);
    assert_true(ns.flushes_heartbeat + ns.flushes_lost >= 1);
    wait_healthy(t->a, 5000);
}

/* ---- stampede control -----------------------------------------------------
 */

typedef struct {
    uc_cache_t *c;
    db_t *db;
    const char *ks, *id;
    read_t r;
} worker_t;

static void *cold_read(void *arg)
{
    worker_t *w = arg;
    w->r = rd(w->c, w->ks != NULL ? w->ks : "stats",
              w->id != NULL ? w->id : "cold", w->db);
    return NULL;
}

static void run_cold(uc_cache_t *const *caches, size_t ncaches, size_t per,
                     db_t *db)
{
    pthread_t th[32];
    worker_t w[32];
    size_t n = ncaches * per;

    assert_true(n <= 32);
    for (size_t i = 0; i < n; i++) {
        w[i].c = caches[i % ncaches];
        w[i].db = db;
        w[i].ks = NULL;
        w[i].id = NULL;
        assert_int_equal(pthread_create(&th[i], NULL, cold_read, &w[i]), 0);
    }
    for (size_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].r.rc, UC_OK);
        assert_int_equal(w[i].r.version, 0);
    }
}

static void test_single_flight(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_stats_t st;

    db.sleep_ms = 200;
    run_cold(&t->a, 1, 16, &db);
    assert_int_equal(atomic_load(&db.calls), 1);
    uc_keyspace_stats(uc_cache_keyspace(t->a, "stats"), &st);
    assert_int_equal(st.flight_joins, 15);
}

static void test_one_load_across_instances(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_cache_t *both[2] = {t->a, t->b};
    uc_stats_t sa, sb;

    db.sleep_ms = 300;
    run_cold(both, 2, 8, &db);
    uc_keyspace_stats(uc_cache_keyspace(t->a, "stats"), &sa);
    uc_keyspace_stats(uc_cache_keyspace(t->b, "stats"), &sb);
    if (atomic_load(&db.calls) != 1) {
        printf("a: joins %llu waits %llu conflicts %llu fallbacks %llu "
               "errors %llu bypasses %llu; b: joins %llu waits %llu "
               "conflicts %llu fallbacks %llu errors %llu bypasses %llu\n",
               (unsigned long long)sa.flight_joins,
               (unsigned long long)sa.lease_waits,
               (unsigned long long)sa.lease_conflicts,
               (unsigned long long)sa.fallbacks, (unsigned long long)sa.errors,
               (unsigned long long)sa.bypasses,
               (unsigned long long)sb.flight_joins,
               (unsigned long long)sb.lease_waits,
               (unsigned long long)sb.lease_conflicts,
               (unsigned long long)sb.fallbacks, (unsigned long long)sb.errors,
               (unsigned long long)sb.bypasses);
    }
    assert_int_equal(atomic_load(&db.calls), 1);
    assert_true(sa.lease_waits + sb.lease_waits >= 1);
    assert_int_equal(sa.lease_wait_timeouts + sb.lease_wait_timeouts, 0);
}

/* Writes a bare lease into the entry's key on a raw connection, as an
 * instance that took it and then died would have left it (10 s to live). */
static void orphan_lease(two_t *t, const char *key)
{
    uc_config_t cfg;
    char fk[256];
    static const char lease[20] = {'U', 'C', 'L', 1,   'o', 'r', 'p',
                                   'h', 'a', 'n', '-', 'l', 'e', 'a',
                                   's', 'e', '-', '0', '0', '1'};

    uc_config_init(&cfg);
    snprintf(fk, sizeof(fk), "%s%s", cfg.key_prefix, key);
    redisContext *raw = redisConnect("127.0.0.1", t->f->r.port);
    assert_true(raw != NULL && raw->err == 0);
    redisReply *r =
        redisCommand(raw, "SET %s %b PX 10000", fk, lease, sizeof(lease));
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(raw);
}

/* A lease whose holder is gone: a reader waits for it about a second (not
 * the lease's 10 s), takes it over, loads and stores; the next reader, on
 * the other instance, hits. */
static void test_orphaned_lease_taken_over(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_stats_t sa, sb;

    orphan_lease(t, "stats:orphan");
    uint64_t t0 = uc_test_now_ms();
    read_t r = rd(t->a, "stats", "orphan", &db);
    uint64_t took = uc_test_now_ms() - t0;
    printf("orphaned lease: the reader answered after %llu ms\n",
           (unsigned long long)took);
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.source, UC_FROM_LOADER);
    assert_true(took >= 900);  /* it did wait for the fill */
    assert_true(took <= 5000); /* and not for the lease's expiry */
    uc_keyspace_stats(uc_cache_keyspace(t->a, "stats"), &sa);
    assert_int_equal(sa.lease_waits, 1);
    assert_int_equal(sa.lease_wait_timeouts, 1);
    assert_int_equal(sa.lease_takeovers, 1);
    assert_int_equal(sa.lease_conflicts, 0);

    r = rd(t->b, "stats", "orphan", &db);
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.source, UC_FROM_CACHE);
    assert_int_equal(atomic_load(&db.calls), 1);
    uc_keyspace_stats(uc_cache_keyspace(t->b, "stats"), &sb);
    assert_int_equal(sb.lease_waits, 0);
}

typedef struct {
    uc_cache_t *c;
    db_t *db;
    read_t r;
} slow_t;

static void *slow_read(void *arg)
{
    slow_t *s = arg;
    s->r = rd(s->c, "stats", "slow", s->db);
    return NULL;
}

/* A holder alive but slower than the wait: the waiter takes its lease
 * over and stores its own load; the holder's later store loses the
 * compare-and-set (a stale reject, as after an invalidation) and is not
 * kept, so the key holds the taker's value. */
static void test_slow_holder_loses_lease(void **state)
{
    two_t *t = start(state);
    db_t slow = {0}, fast = {0};
    pthread_t th;
    slow_t s = {t->a, &slow, {0, 0, 0, -1}};
    uc_stats_t sa, sb;

    atomic_store(&slow.gate, 1);
    atomic_store(&slow.version, 7);
    assert_int_equal(pthread_create(&th, NULL, slow_read, &s), 0);
    for (int i = 0; i < 2000 && atomic_load(&slow.inflight) == 0; i++) {
        uc_test_sleep_ms(1);
    }
    assert_int_equal(atomic_load(&slow.inflight), 1); /* a holds the lease */
    read_t r = rd(t->b, "stats", "slow", &fast);
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.source, UC_FROM_LOADER);
    assert_int_equal(r.version, 0);
    atomic_store(&slow.gate, 0);
    pthread_join(th, NULL);
    assert_int_equal(s.r.rc, UC_OK);
    assert_int_equal(s.r.version, 7); /* its caller still gets its load */
    uc_keyspace_stats(uc_cache_keyspace(t->a, "stats"), &sa);
    uc_keyspace_stats(uc_cache_keyspace(t->b, "stats"), &sb);
    assert_int_equal(sb.lease_takeovers, 1);
    assert_int_equal(sa.stale_rejects, 1);
    r = rd(t->b, "stats", "slow", &fast);
    assert_int_equal(r.source, UC_FROM_CACHE);
    assert_int_equal(r.version, 0);
    assert_int_equal(atomic_load(&fast.calls), 1);
}

/* ---- serve-stale, negative, early refresh, jitter -------------------------
 */

static void test_serve_stale(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_stats_t st;

    assert_int_equal(rd(t->a, "short", "s", &db).version, 0);
    uc_test_sleep_ms(1200); /* past the 1 s TTL, within the grace */
    atomic_store(&db.fail, 1);
    for (int i = 0; i < 2; i++) {
        uc_cache_t *c = i == 0 ? t->a : t->b;
        read_t r = rd(c, "short", "s", &db);
        assert_int_equal(r.rc, UC_OK);
        assert_int_equal(r.source, UC_FROM_STALE);
        assert_int_equal(r.version, 0);
    }
    uc_keyspace_stats(uc_cache_keyspace(t->a, "short"), &st);
    assert_true(st.stale_served >= 1);
    /* A write's invalidation removes the stale value too. */
    write_db(t->a, "short", "s", &db);
    assert_int_equal(rd(t->a, "short", "s", &db).rc, -1000);
    assert_int_equal(rd(t->b, "short", "s", &db).rc, -1000);
    /* Recovery without restart. */
    atomic_store(&db.fail, 0);
    read_t r = rd(t->b, "short", "s", &db);
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.version, 1);
}

static void test_stale_while_slow(void **state)
{
    two_t *t = start(state);
    db_t db = {0}, slow = {0};
    worker_t w = {0};
    pthread_t th;

    assert_int_equal(rd(t->a, "short", "s", &db).version, 0);
    uc_test_sleep_ms(1200);
    /* Instance a reloads slowly, holding the lease over the expired value;
     * instance b answers with that value after the soft timeout instead of
     * waiting for the reload. */
    atomic_store(&slow.version, 7);
    slow.sleep_ms = 1500;
    w.c = t->a;
    w.db = &slow;
    w.ks = "short";
    w.id = "s";
    assert_int_equal(pthread_create(&th, NULL, cold_read, &w), 0);
    uc_test_sleep_ms(200);
    uint64_t t0 = uc_test_now_ms();
    read_t r = rd(t->b, "short", "s", &slow);
    uint64_t took = uc_test_now_ms() - t0;
    pthread_join(th, NULL);
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.source, UC_FROM_STALE);
    assert_int_equal(r.version, 0);
    assert_true(took < 1000);
    assert_int_equal(atomic_load(&slow.calls), 1);
    /* The slow reload then stored its value. */
    assert_int_equal(w.r.version, 7);
    assert_int_equal(rd(t->b, "short", "s", &slow).version, 7);
}

static void test_negative(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_stats_t st;

    atomic_store(&db.missing, 1);
    assert_int_equal(rd(t->a, "job", "nope", &db).rc, UC_MISS);
    assert_int_equal(rd(t->a, "job", "nope", &db).rc, UC_MISS);
    assert_int_equal(rd(t->b, "job", "nope", &db).rc, UC_MISS);
    assert_int_equal(atomic_load(&db.calls), 1);
    uc_keyspace_stats(uc_cache_keyspace(t->a, "job"), &st);
    assert_int_equal(st.negative_hits, 1);
    /* The entity appears: its write invalidates the remembered 404. */
    atomic_store(&db.missing, 0);
    write_db(t->a, "job", "nope", &db);
    assert_int_equal(rd(t->b, "job", "nope", &db).version, 1);
}

static void test_early_refresh(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    uc_stats_t st;
    int misses = 0;

    db.sleep_ms = 150;
    assert_int_equal(rd(t->a, "early", "e", &db).rc, UC_OK);
    uint64_t t0 = uc_test_now_ms();
    while (uc_test_now_ms() - t0 < 3000) {
        read_t r = rd(t->a, "early", "e", &db);
        assert_int_equal(r.rc, UC_OK);
        if (r.source == UC_FROM_LOADER && r.tier == UC_TIER_NONE) {
            misses++;
        }
        uc_test_sleep_ms(10);
    }
    uc_keyspace_stats(uc_cache_keyspace(t->a, "early"), &st);
    /* 3 s over a 2 s TTL: at least one refresh came before the expiry,
     * and every load after the first was a refresh, not a miss. */
    assert_true(st.early_refreshes >= 1);
    assert_int_equal((uint64_t)atomic_load(&db.calls), 1 + st.early_refreshes);
    assert_int_equal((int)st.early_refreshes, misses);
}

/* ---- background loads (the keyspace's own loader) ------------------------
 */

/* Waits (bounded) until no load runs. */
static void wait_loads_done(db_t *db)
{
    for (int i = 0; i < 5000 && atomic_load(&db->inflight) > 0; i++) {
        uc_test_sleep_ms(1);
    }
    assert_int_equal(atomic_load(&db->inflight), 0);
}

typedef struct {
    uc_cache_t *c;
    const char *ks, *id;
    read_t r;
    _Atomic int done;
} bg_read_t;

static void *bg_read(void *arg)
{
    bg_read_t *b = arg;
    b->r = rd(b->c, b->ks, b->id, NULL);
    atomic_store(&b->done, 1);
    return NULL;
}

static void test_soft_timeout(void **state)
{
    two_t *t = start(state);
    db_t *db = own_db();
    uc_stats_t st;

    assert_int_equal(rd(t->a, "own", "s", NULL).source, UC_FROM_LOADER);
    uc_test_sleep_ms(1300); /* past the 1 s TTL, well within the grace */

    /* The database hangs: the read answers stale while its load is still
     * running (the gate opens only after the read returned). */
    atomic_store(&db->gate, 1);
    read_t r = rd(t->a, "own", "s", NULL);
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.source, UC_FROM_STALE);
    assert_int_equal(r.version, 0);
    assert_int_equal(atomic_load(&db->inflight), 1);
    /* Its joiners in this process, and the other instance (which finds the
     * fill's lease over the old value), answer stale too, no new load. */
    r = rd(t->a, "own", "s", NULL);
    assert_int_equal(r.source, UC_FROM_STALE);
    r = rd(t->b, "own", "s", NULL);
    assert_int_equal(r.source, UC_FROM_STALE);
    assert_int_equal(r.version, 0);
    assert_int_equal(atomic_load(&db->calls), 2);

    /* The load finishes in the background and stores its value. */
    atomic_store(&db->gate, 0);
    wait_loads_done(db);
    r = rd(t->b, "own", "s", NULL);
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.source, UC_FROM_CACHE);
    assert_int_equal(atomic_load(&db->calls), 2);
    uc_keyspace_stats(uc_cache_keyspace(t->a, "own"), &st);
    assert_int_equal(st.soft_timeouts, 1);
    assert_true(st.background_loads >= 1);
    assert_true(st.stale_served >= 2);
}

static void test_write_ends_stale_of_slow_load(void **state)
{
    two_t *t = start(state);
    db_t *db = own_db();
    bg_read_t b = {t->a, "own", "w", {0, 0, 0, -1}, 0};
    pthread_t th;

    assert_int_equal(rd(t->a, "own", "w", NULL).version, 0);
    uc_test_sleep_ms(1300);
    atomic_store(&db->gate, 1);
    assert_int_equal(rd(t->a, "own", "w", NULL).source, UC_FROM_STALE);

    /* A write while the slow load runs: no read after it answers with the
     * old value, stale or not; it waits for the database instead. */
    write_db(t->a, "own", "w", db);
    assert_int_equal(pthread_create(&th, NULL, bg_read, &b), 0);
    uc_test_sleep_ms(100);
    int waited = !atomic_load(&b.done);
    atomic_store(&db->gate, 0);
    pthread_join(th, NULL);
    assert_true(waited);
    assert_int_equal(b.r.rc, UC_OK);
    assert_int_not_equal(b.r.source, UC_FROM_STALE);
    assert_int_equal(b.r.version, 1);
    wait_loads_done(db);
    /* The slow load's own store lost its lease to the write. */
    read_t r = rd(t->b, "own", "w", NULL);
    assert_int_equal(r.version, 1);
}

/* An expired value whose early refresh is landing (another instance holds
 * the refresh's claim): a reader waits for it, at most the soft timeout,
 * then answers stale, and does not load the same generation again. */
static void test_fill_waits_for_landing_refresh(void **state)
{
    two_t *t = start(state);
    db_t *db = own_db();
    uc_config_t cfg;
    char cmd[256];
    uc_stats_t st;

    uc_config_init(&cfg);
    /* Refills after writes would make the misses these tests expect hits. */
    cfg.refill_top = -1;

    uc_test_redis_config(&cfg, t->f->r.port);
    assert_int_equal(rd(t->a, "own", "l", NULL).source, UC_FROM_LOADER);
    uc_test_sleep_ms(1300);
    snprintf(cmd, sizeof(cmd), "SET %suc:rf:own:l 1 PX 5000", cfg.key_prefix);
    assert_int_equal(uc_test_redis_cli(&t->f->r, NULL, cmd, NULL, 0), 0);
    read_t r = rd(t->b, "own", "l", NULL);
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.source, UC_FROM_STALE);
    assert_int_equal(r.version, 0);
    assert_int_equal(atomic_load(&db->calls), 1);
    uc_keyspace_stats(uc_cache_keyspace(t->b, "own"), &st);
    assert_int_equal(st.lease_waits, 1);

    /* No refresh any more: the next reader fills. */
    snprintf(cmd, sizeof(cmd), "DEL %suc:rf:own:l", cfg.key_prefix);
    assert_int_equal(uc_test_redis_cli(&t->f->r, NULL, cmd, NULL, 0), 0);
    r = rd(t->b, "own", "l", NULL);
    assert_int_equal(r.source, UC_FROM_LOADER);
    assert_int_equal(atomic_load(&db->calls), 2);
}

static void test_background_refresh(void **state)
{
    two_t *t = start(state);
    db_t *db = own_db();
    uc_stats_t st;
    read_t r;
    int i;

    /* A 20 ms load with beta 1e6: every read of the 60 s entry is due for
     * an early refresh. */
    db->sleep_ms = 20;
    assert_int_equal(rd(t->a, "ownearly", "r", NULL).source, UC_FROM_LOADER);
    db->sleep_ms = 0;
    atomic_store(&db->gate, 1);
    atomic_fetch_add(&db->version, 1); /* what the refresh will find */
    for (i = 0; i < 200 && atomic_load(&db->inflight) == 0; i++) {
        r = rd(t->a, "ownearly", "r", NULL);
        assert_int_equal(r.source, UC_FROM_CACHE);
        assert_int_equal(r.version, 0);
        uc_test_sleep_ms(2);
    }
    /* The refresh runs (blocked), and reads go on answering at once. */
    assert_int_equal(atomic_load(&db->inflight), 1);
    r = rd(t->a, "ownearly", "r", NULL);
    assert_int_equal(r.source, UC_FROM_CACHE);
    assert_int_equal(r.version, 0);
    /* The other instance is due too, and leaves the refresh to the first
     * (its refresh, in its own pool, finds the first one's claim). */
    for (i = 0; i < 200; i++) {
        r = rd(t->b, "ownearly", "r", NULL);
        assert_int_equal(r.version, 0);
        uc_keyspace_stats(uc_cache_keyspace(t->b, "ownearly"), &st);
        if (st.refreshes_elsewhere >= 1) {
            break;
        }
        uc_test_sleep_ms(5);
    }
    assert_true(st.refreshes_elsewhere >= 1);
    assert_int_equal(st.early_refreshes, 0);
    assert_int_equal(atomic_load(&db->calls), 2);

    atomic_store(&db->gate, 0);
    wait_loads_done(db);
    /* The refreshed value reaches both instances (bounded wait: the
     * second learns of it through its invalidation). */
    int seen_a = 0, seen_b = 0;
    for (i = 0; i < 200 && !(seen_a && seen_b); i++) {
        seen_a |= rd(t->a, "ownearly", "r", NULL).version == 1;
        seen_b |= rd(t->b, "ownearly", "r", NULL).version == 1;
        uc_test_sleep_ms(5);
    }
    assert_true(seen_a);
    assert_true(seen_b);
    uc_keyspace_stats(uc_cache_keyspace(t->a, "ownearly"), &st);
    assert_true(st.early_refreshes >= 1);
    assert_true(st.background_loads >= 1);
}

static void test_ttl_jitter(void **state)
{
    two_t *t = start(state);
    db_t db = {0};
    int64_t lo = INT64_MAX, hi = 0;
    char id[16], key[64];

    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "j%d", i);
        assert_int_equal(rd(t->a, "stats", id, &db).rc, UC_OK);
        int n = snprintf(key, sizeof(key), "stats:%s", id);
        int64_t ttl = 0;
        assert_int_equal(uc_cache_ttl(t->a, key, (size_t)n, &ttl), UC_OK);
        ttl -= 86400 * 1000; /* the serve-stale grace */
        lo = ttl < lo ? ttl : lo;
        hi = ttl > hi ? ttl : hi;
    }
    /* 600 s +- 10 %. */
    assert_true(lo >= 539000 && hi <= 660000);
    assert_true(hi - lo > 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_near_hits_share_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_instance_sees_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flushall_flushes_near, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_killed_subscriber, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stopped_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_load_across_instances, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_orphaned_lease_taken_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slow_holder_loses_lease, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_serve_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_while_slow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_jitter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_soft_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_ends_stale_of_slow_load,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_refresh, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fill_waits_for_landing_refresh,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
