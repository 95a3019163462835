/* SPDX-License-Identifier: MIT */
/*
 * Warming (src/lib/warm.c) against a real redis-server of the test's own:
 *
 *   - after a FLUSHALL (sent on a raw connection, as an operator would),
 *     the most read entries of a Zipf mix are back in Redis without any
 *     client read: the loader calls are the warmer's, exactly one per top
 *     entry, and entries outside the top stay out;
 *   - the warmer's loads keep to the rate (over any window, at most
 *     rate x window + burst), and uc_cache_destroy() stops a warm in
 *     progress promptly;
 *   - uc_cache_warm() refills what was deleted, costs no load for what is
 *     still cached, and refuses a second warm while one runs;
 *   - a failing database (3 failed loads in a row) or a stopped Redis ends
 *     a warm, the entries left counted as skipped;
 *   - the warmer's own reads do not count as reads in the record, and with
 *     warming off there is nothing to queue;
 *   - at start: an instance warms what another published as its most read
 *     (the shared list), with no load for entries still in Redis;
 *   - warm on write: a write's invalidation of a hot entry (by key or by
 *     tag) has it loaded again at once, one load, and the next read is a
 *     hit counted as answered by the refill; a cold entry is left out; the
 *     rate, a failing database and refill_top < 0 hold refills back.
 *
 * The loader stands for the database: it counts its calls and notes when
 * each came.
 */
#include <hiredis/hiredis.h>
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

#include "cache_int.h"
#include "redis_fixture.h"
#include "util.h"

#define NKEYS 100
#define CALLS_MAX 4096

/* ---- the "database" ------------------------------------------------------ */

typedef struct {
    _Atomic unsigned calls;
    _Atomic int fail;          /* nonzero: every load fails */
    _Atomic unsigned version;  /* in every value: a write bumps it */
    _Atomic unsigned delay_ms; /* each load takes this long */
    uint64_t at_us[CALLS_MAX]; /* when each call came */
    pthread_mutex_t mu;
} db_t;

static db_t the_db;

static int load(void *arg, const char *const *fields, size_t nfields,
                char **val, size_t *len)
{
    db_t *db = arg;
    char buf[64];

    if (nfields < 1) {
        return UC_EINVAL;
    }
    pthread_mutex_lock(&db->mu);
    unsigned n = atomic_fetch_add(&db->calls, 1);
    if (n < CALLS_MAX) {
        db->at_us[n] = uc_test_now_us();
    }
    pthread_mutex_unlock(&db->mu);
    if (atomic_load(&db->fail)) {
        return -1000;
    }
    if (atomic_load(&db->delay_ms) > 0) {
        uc_test_sleep_ms(atomic_load(&db->delay_ms));
    }
    int w = snprintf(buf, sizeof(buf), "value of %s v%u", fields[0],
                     atomic_load(&db->version));
    *val = malloc((size_t)w + 1);
    if (*val == NULL) {
        return UC_ENOMEM;
    }
    memcpy(*val, buf, (size_t)w + 1);
    *len = (size_t)w;
    return UC_OK;
}

static void db_reset(db_t *db)
{
    pthread_mutex_lock(&db->mu);
    atomic_store(&db->calls, 0);
    atomic_store(&db->fail, 0);
    atomic_store(&db->delay_ms, 0);
    pthread_mutex_unlock(&db->mu);
}

/* ---- helpers ---------------------------------------------------------------
 */

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* A rank in [0, n) drawn from a Zipf law of exponent 1. */
static size_t zipf(uint64_t *rng, size_t n)
{
    static double cdf[NKEYS * 10];
    static size_t built;
    double u = (double)(xs(rng) >> 11) / 9007199254740992.0;
    size_t lo = 0, hi = n - 1;

    if (built != n) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            sum += 1.0 / (double)(i + 1);
            cdf[i] = sum;
        }
        for (size_t i = 0; i < n; i++) {
            cdf[i] /= sum;
        }
        built = n;
    }
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cdf[mid] < u) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void id_of(size_t rank, char *buf, size_t cap)
{
    snprintf(buf, cap, "id-%zu", rank);
}

static int read_one(uc_keyspace_t *ks, const char *id)
{
    const char *f[1] = {id};
    uc_load_result_t r;
    int rc = uc_keyspace_get_or_load(ks, f, 1, NULL, &r);
    if (rc == UC_OK) {
        uc_free(r.data);
    }
    return rc;
}

typedef struct {
    uc_test_fixture_t *f;
    uc_cache_t *c;
    redisContext *raw;
} fx_t;

static uc_cache_t *open_cache_refill(fx_t *fx, int top, int rate,
                                     int refill_top, int refill_rate)
{
    static const char *const tags[] = {"item:{id}", NULL};
    static uc_keyspace_def_t defs[3] = {
        {
            .name = "ws",
            .pattern = "warm:{id}",
            .ttl_s = 600,
            .loader = load,
            .loader_arg = &the_db,
            /* no early refresh: every loader call here is a fill */
            .refresh_beta = -1.0,
        },
        {
            .name = "wt",
            .pattern = "tagged:{id}",
            .ttl_s = 600,
            .loader = load,
            .loader_arg = &the_db,
            .refresh_beta = -1.0,
            .tags = tags,
        },
        {
            /* pages: several entries carry one item's tag */
            .name = "wp",
            .pattern = "page:{id}:{n}",
            .ttl_s = 600,
            .loader = load,
            .loader_arg = &the_db,
            .refresh_beta = -1.0,
            .tags = tags,
        },
    };
    uc_config_t cfg;
    char err[256];

    uc_test_redis_config(&cfg, fx->f->r.port);
    cfg.command_timeout_ms = 100;
    cfg.trust_check_ms = 100;
    cfg.log_tail_ms = 50;
    cfg.warm_top = top;
    cfg.warm_rate = rate;
    cfg.hot_sample = 1;
    cfg.refill_top = refill_top;
    cfg.refill_rate = refill_rate;
    /* Longer than the default's 50 ms, so that a busy machine does not
     * turn a write that waits for its refill into one that does not. */
    cfg.refill_wait_ms = 1000;
    fx->c = uc_test_open_cache(&cfg);
    assert_int_equal(uc_cache_add_keyspaces(fx->c, defs, 3, err, sizeof(err)),
                     UC_OK);
    return fx->c;
}

static uc_cache_t *open_cache(fx_t *fx, int top, int rate)
{
    /* Writes here are the tests' own deletes: no refill unless asked. */
    return open_cache_refill(fx, top, rate, -1, 0);
}

static redisReply *raw_cmd(fx_t *fx, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(fx->raw, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    return r;
}

static int key_exists(fx_t *fx, const char *id)
{
    redisReply *r = raw_cmd(fx, "EXISTS warm:%s", id);
    int e = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return e;
}

/* Waits (bounded) until the near cache has applied the invalidations of
 * the raw connection's writes so far: a warm that read a near copy the
 * write had already removed in Redis would count a hit, not a load. */
static void settle(fx_t *fx)
{
    if (fx->c->track != NULL) {
        assert_int_equal(uc__track_barrier(fx->c->track, 2000), 1);
    }
}

/* Waits (bounded) until no warm is queued or running. */
static void wait_idle(uc_cache_t *c, unsigned ms)
{
    uint64_t until = uc_test_now_ms() + ms;
    while (uc__warm_busy(c) && uc_test_now_ms() < until) {
        uc_test_sleep_ms(10);
    }
    assert_false(uc__warm_busy(c));
}

/* Reads a Zipf mix of `reads` over NKEYS entries; truth[] gets the counts. */
static void zipf_mix(uc_keyspace_t *ks, unsigned reads, unsigned *truth)
{
    uint64_t rng = 12345;
    char id[32];

    for (unsigned i = 0; i < reads; i++) {
        size_t r = zipf(&rng, NKEYS);
        id_of(r, id, sizeof(id));
        assert_int_equal(read_one(ks, id), UC_OK);
        truth[r]++;
    }
}

static uc_stats_t stats_of(uc_keyspace_t *ks)
{
    uc_stats_t s;
    uc_keyspace_stats(ks, &s);
    return s;
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    struct timeval tv = {2, 0};

    if (fx == NULL || uc_test_fixture_setup((void **)&fx->f) != 0) {
        free(fx);
        return -1;
    }
    uc_test_fixture_start(fx->f, NULL);
    fx->raw = redisConnectWithTimeout("127.0.0.1", fx->f->r.port, tv);
    if (fx->raw == NULL || fx->raw->err != 0) {
        return -1;
    }
    redisSetTimeout(fx->raw, tv);
    pthread_mutex_init(&the_db.mu, NULL);
    db_reset(&the_db);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;

    uc_cache_destroy(fx->c);
    if (fx->raw != NULL) {
        redisFree(fx->raw);
    }
    pthread_mutex_destroy(&the_db.mu);
    uc_test_fixture_teardown((void **)&fx->f);
    free(fx);
    return 0;
}

/* ---- tests -----------------------------------------------------------------
 */

/*
 * The test the feature is for: a Zipf mix read through get-or-load, then a
 * FLUSHALL; the top entries come back without a client read.
 */
static void flushall_refills_top(void **state)
{
    fx_t *fx = *state;
    enum { TOP = 20 };
    uc_cache_t *c = open_cache(fx, TOP, 1000);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    unsigned truth[NKEYS] = {0};
    uc_hot_entry_t top[TOP], after[TOP];

    zipf_mix(ks, 3000, truth);
    wait_idle(c, 5000); /* the first start's warm, if any */
    assert_int_equal(uc_keyspace_hot(ks, top, TOP), NKEYS);
    for (size_t i = 0; i < TOP; i++) {
        /* unsampled and nothing evicted: exact */
        assert_int_equal(top[i].reads, truth[atoi(top[i].key + 8)]);
    }
    uc_stats_t s0 = stats_of(ks);
    db_reset(&the_db);

    freeReplyObject(raw_cmd(fx, "FLUSHALL"));
    uint64_t t0 = uc_test_now_ms(), until = t0 + 10000;
    size_t back = 0;
    while (uc_test_now_ms() < until) {
        back = 0;
        for (size_t i = 0; i < TOP; i++) {
            back += key_exists(fx, top[i].key + 5);
        }
        if (back == TOP) {
            break;
        }
        uc_test_sleep_ms(20);
    }
    print_message("after FLUSHALL: %zu of the top %d back in %llu ms\n", back,
                  TOP, (unsigned long long)(uc_test_now_ms() - t0));
    assert_int_equal(back, TOP);
    wait_idle(c, 5000);

    /* Every loader call was the warmer's, one per top entry; the rest of
     * the entries that were read stay out of Redis. */
    uc_stats_t s1 = stats_of(ks);
    assert_int_equal(atomic_load(&the_db.calls), TOP);
    assert_int_equal(s1.warm_loads - s0.warm_loads, TOP);
    uc_stats_t tot;
    uc_cache_stats(c, &tot);
    assert_true(tot.dataset_flushes >= 1);
    size_t present = 0;
    for (size_t r = 0; r < NKEYS; r++) {
        char id[32];
        id_of(r, id, sizeof(id));
        present += key_exists(fx, id);
    }
    assert_int_equal(present, TOP);
    /* The warmer's reads were not counted as reads. */
    assert_int_equal(uc_keyspace_hot(ks, after, TOP), NKEYS);
    for (size_t i = 0; i < TOP; i++) {
        assert_string_equal(after[i].key, top[i].key);
        assert_int_equal(after[i].reads, top[i].reads);
    }
    /* A client read of a warmed entry is a hit. */
    uint64_t loads = s1.loads;
    assert_int_equal(read_one(ks, top[0].key + 5), UC_OK);
    assert_int_equal(stats_of(ks).loads, loads);
}

/*
 * 200 hot entries at 20 loads a second (burst 2): over every window the
 * loads are at most rate x window + burst; destroy stops the warm at once.
 */
static void rate_limit_held(void **state)
{
    fx_t *fx = *state;
    enum { TOP = 200, RATE = 20, BURST = 2 };
    uc_cache_t *c = open_cache(fx, TOP, RATE);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    char id[32];

    for (size_t r = 0; r < TOP; r++) {
        id_of(r, id, sizeof(id));
        for (size_t k = 0; k <= (TOP - r) / 50; k++) {
            assert_int_equal(read_one(ks, id), UC_OK);
        }
    }
    wait_idle(c, 20000);
    db_reset(&the_db);
    freeReplyObject(raw_cmd(fx, "FLUSHALL"));
    /* Let the warm run for about 2.5 s. */
    uint64_t until = uc_test_now_ms() + 10000;
    while (atomic_load(&the_db.calls) == 0 && uc_test_now_ms() < until) {
        uc_test_sleep_ms(10);
    }
    assert_true(atomic_load(&the_db.calls) > 0);
    uc_test_sleep_ms(2500);
    assert_true(uc__warm_busy(c));
    uint64_t t0 = uc_test_now_us();
    uc_cache_destroy(c);
    fx->c = NULL;
    uint64_t took_ms = (uc_test_now_us() - t0) / 1000;

    unsigned n = atomic_load(&the_db.calls);
    print_message("rate %d/s: %u loads in about 2.5 s; destroy took %llu ms\n",
                  RATE, n, (unsigned long long)took_ms);
    assert_true(n >= RATE * 2);
    assert_true(n <= RATE * 3 + BURST);
    /* every window [i, j] of loads: j - i + 1 <= rate x (t_j - t_i) + burst,
     * with 5 ms for the clock's and the scheduler's slack */
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = i; j < n; j++) {
            double span_s =
                (double)(the_db.at_us[j] - the_db.at_us[i] + 5000) / 1e6;
            if ((double)(j - i + 1) > RATE * span_s + BURST) {
                fail_msg("loads %u..%u: %u in %.3f s", i, j, j - i + 1, span_s);
            }
        }
    }
    assert_true(took_ms < 1000);
}

/* uc_cache_warm(): what was deleted comes back; what is still cached is a
 * hit; a second warm is refused while one runs. */
static void warm_on_demand(void **state)
{
    fx_t *fx = *state;
    enum { TOP = 30, GONE = 10 };
    uc_cache_t *c = open_cache(fx, TOP, 50);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    unsigned truth[NKEYS] = {0};
    uc_hot_entry_t top[TOP];

    zipf_mix(ks, 3000, truth);
    wait_idle(c, 5000);
    assert_true(uc_keyspace_hot(ks, top, TOP) >= TOP);
    for (size_t i = 0; i < GONE; i++) {
        freeReplyObject(raw_cmd(fx, "DEL %s", top[i].key));
    }
    settle(fx);
    db_reset(&the_db);
    uc_stats_t s0 = stats_of(ks);
    assert_int_equal(uc_cache_warm(c), UC_OK);
    assert_int_equal(uc_cache_warm(c), UC_EUNAVAILABLE);
    wait_idle(c, 10000);
    uc_stats_t s1 = stats_of(ks);
    for (size_t i = 0; i < GONE; i++) {
        assert_true(key_exists(fx, top[i].key + 5));
    }
    assert_int_equal(atomic_load(&the_db.calls), GONE);
    assert_int_equal(s1.warm_loads - s0.warm_loads, GONE);
    assert_int_equal(s1.warm_hits - s0.warm_hits, TOP - GONE);
    assert_int_equal(s1.warm_skipped - s0.warm_skipped, 0);
    /* Idle again: a new warm may be queued, and finds everything cached. */
    assert_int_equal(uc_cache_warm(c), UC_OK);
    wait_idle(c, 10000);
    assert_int_equal(atomic_load(&the_db.calls), GONE);
}

/* A failing database: the warm gives up after 3 failed loads in a row and
 * counts the rest as skipped. */
static void failing_loader_gives_up(void **state)
{
    fx_t *fx = *state;
    enum { TOP = 20 };
    uc_cache_t *c = open_cache(fx, TOP, 1000);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    unsigned truth[NKEYS] = {0};
    uc_hot_entry_t top[TOP];

    zipf_mix(ks, 2000, truth);
    wait_idle(c, 5000);
    assert_true(uc_keyspace_hot(ks, top, TOP) >= TOP);
    for (size_t i = 0; i < TOP; i++) {
        freeReplyObject(raw_cmd(fx, "DEL %s", top[i].key));
    }
    settle(fx);
    db_reset(&the_db);
    atomic_store(&the_db.fail, 1);
    uc_stats_t s0 = stats_of(ks);
    assert_int_equal(uc_cache_warm(c), UC_OK);
    wait_idle(c, 10000);
    uc_stats_t s1 = stats_of(ks);
    assert_int_equal(atomic_load(&the_db.calls), 3);
    assert_int_equal(s1.warm_loads - s0.warm_loads, 3);
    assert_int_equal(s1.warm_skipped - s0.warm_skipped, TOP - 3);
}

/* Redis stopped: the warm answers from the near cache while it may, then
 * the first read that fails ends it; it never loads more than once for a
 * cache that keeps nothing. */
static void cache_down_gives_up(void **state)
{
    fx_t *fx = *state;
    enum { TOP = 20 };
    uc_cache_t *c = open_cache(fx, TOP, 1000);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    unsigned truth[NKEYS] = {0};

    zipf_mix(ks, 2000, truth);
    wait_idle(c, 5000);
    db_reset(&the_db);
    assert_int_equal(uc_test_redis_signal(&fx->f->r, SIGSTOP), 0);
    uc_test_sleep_ms(400); /* past the near cache's heartbeat deadline */
    uc_stats_t s0 = stats_of(ks);
    assert_int_equal(uc_cache_warm(c), UC_OK);
    wait_idle(c, 10000);
    uc_stats_t s1 = stats_of(ks);
    assert_int_equal(uc_test_redis_signal(&fx->f->r, SIGCONT), 0);
    print_message("redis stopped: %llu loads, %llu hits, %llu skipped\n",
                  (unsigned long long)(s1.warm_loads - s0.warm_loads),
                  (unsigned long long)(s1.warm_hits - s0.warm_hits),
                  (unsigned long long)(s1.warm_skipped - s0.warm_skipped));
    assert_true(atomic_load(&the_db.calls) <= 1);
    assert_int_equal(s1.warm_loads - s0.warm_loads, atomic_load(&the_db.calls));
    assert_int_equal((s1.warm_loads - s0.warm_loads) +
                         (s1.warm_hits - s0.warm_hits) +
                         (s1.warm_skipped - s0.warm_skipped),
                     TOP);
    assert_true(s1.warm_skipped - s0.warm_skipped >= TOP - 1);
}

/* Warming off: nothing to queue, and a FLUSHALL loads nothing. */

/* ---- warm on write --------------------------------------------------------
 */

/* Invalidates entry id of ks as a write does. */
static void write_of(uc_keyspace_t *ks, const char *id)
{
    const char *f[1] = {id};
    assert_int_equal(uc_keyspace_invalidate(ks, f, 1, NULL), UC_OK);
}

static int read_tier(uc_keyspace_t *ks, const char *id, uc_source_t *src,
                     uc_tier_t *tier)
{
    const char *f[1] = {id};
    uc_load_result_t r;
    int rc = uc_keyspace_get_or_load(ks, f, 1, NULL, &r);
    if (rc == UC_OK) {
        *src = r.source;
        *tier = r.tier;
        uc_free(r.data);
    }
    return rc;
}

static int read_src(uc_keyspace_t *ks, const char *id, uc_source_t *src)
{
    uc_tier_t tier;
    return read_tier(ks, id, src, &tier);
}

/* Reads id until the near cache answers (the channel proven), bounded. */
static void until_near(uc_keyspace_t *ks, const char *id)
{
    uint64_t until = uc_test_now_ms() + 3000;
    uc_source_t src = UC_FROM_FALLBACK;
    uc_tier_t tier = UC_TIER_NONE;

    while (uc_test_now_ms() < until) {
        assert_int_equal(read_tier(ks, id, &src, &tier), UC_OK);
        if (tier == UC_TIER_NEAR) {
            return;
        }
        uc_test_sleep_ms(20);
    }
    fail_msg("%s: no near-cache hit within 3 s", id);
}

/* The test the feature is for: a write of a hot entry, then a hit. */
static void refill_after_write(void **state)
{
    fx_t *fx = *state;
    uc_cache_t *c = open_cache_refill(fx, -1, 100, 10, 100);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    unsigned truth[NKEYS] = {0};
    uc_source_t src = UC_FROM_FALLBACK;
    char cold[32];

    zipf_mix(ks, 3000, truth);
    /* The hottest rank and one read once (rank NKEYS - 1 may be unread). */
    id_of(NKEYS - 1, cold, sizeof(cold));
    assert_int_equal(read_one(ks, cold), UC_OK);
    wait_idle(c, 5000);
    db_reset(&the_db);
    uc_stats_t s0 = stats_of(ks);

    write_of(ks, "id-0");
    wait_idle(c, 5000);
    assert_true(key_exists(fx, "id-0"));
    assert_int_equal(atomic_load(&the_db.calls), 1);
    uc_stats_t s1 = stats_of(ks);
    assert_int_equal(s1.refills - s0.refills, 1);
    /* The read after the write is a hit, and counted as the refill's. */
    assert_int_equal(read_src(ks, "id-0", &src), UC_OK);
    assert_int_equal(src, UC_FROM_CACHE);
    assert_int_equal(atomic_load(&the_db.calls), 1);
    uc_stats_t s2 = stats_of(ks);
    assert_int_equal(s2.refill_hits - s1.refill_hits, 1);

    /* A cold entry: invalidated, not loaded. */
    write_of(ks, cold);
    wait_idle(c, 5000);
    assert_false(key_exists(fx, cold));
    assert_int_equal(atomic_load(&the_db.calls), 1);
    uc_stats_t s3 = stats_of(ks);
    assert_int_equal(s3.refill_skipped_cold - s2.refill_skipped_cold, 1);
    assert_int_equal(s3.refills, s2.refills);
}

/* A tag's invalidation refills the hot entries carrying it, and only them. */
static void refill_after_tag(void **state)
{
    fx_t *fx = *state;
    uc_cache_t *c = open_cache_refill(fx, -1, 100, 10, 100);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "wt");
    unsigned truth[NKEYS] = {0};
    uc_source_t src = UC_FROM_FALLBACK;

    zipf_mix(ks, 3000, truth);
    wait_idle(c, 5000);
    db_reset(&the_db);
    uc_stats_t s0 = stats_of(ks);
    assert_int_equal(uc_cache_invalidate_tag(c, "item:id-1"), UC_OK);
    wait_idle(c, 5000);
    assert_int_equal(atomic_load(&the_db.calls), 1);
    uc_stats_t s1 = stats_of(ks);
    assert_int_equal(s1.refills - s0.refills, 1);
    assert_int_equal(read_src(ks, "id-1", &src), UC_OK);
    assert_int_equal(src, UC_FROM_CACHE);
    assert_int_equal(atomic_load(&the_db.calls), 1);
    /* A tag no hot entry carries loads nothing. */
    assert_int_equal(uc_cache_invalidate_tag(c, "item:nobody"), UC_OK);
    wait_idle(c, 5000);
    assert_int_equal(atomic_load(&the_db.calls), 1);
}

/* With the near cache on, a refill's value lands in it: the store's own
 * invalidation, echoed by the channel, does not leave the read after the
 * write to Redis. For a key and for a tag. */
static void refill_lands_near(void **state)
{
    fx_t *fx = *state;
    uc_cache_t *c = open_cache_refill(fx, -1, 100, 10, 100);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    uc_keyspace_t *kt = uc_cache_keyspace(c, "wt");
    unsigned truth[NKEYS] = {0};
    uc_source_t src = UC_FROM_FALLBACK;
    uc_tier_t tier = UC_TIER_NONE;

    zipf_mix(ks, 3000, truth);
    memset(truth, 0, sizeof(truth));
    zipf_mix(kt, 3000, truth);
    wait_idle(c, 5000);
    until_near(ks, "id-0");
    until_near(kt, "id-1");
    uc_stats_t s0 = stats_of(ks);

    for (int round = 0; round < 5; round++) {
        write_of(ks, "id-0");
        wait_idle(c, 5000);
        assert_int_equal(read_tier(ks, "id-0", &src, &tier), UC_OK);
        assert_int_equal(src, UC_FROM_CACHE);
        assert_int_equal(tier, UC_TIER_NEAR);

        assert_int_equal(uc_cache_invalidate_tag(c, "item:id-1"), UC_OK);
        wait_idle(c, 5000);
        assert_int_equal(read_tier(kt, "id-1", &src, &tier), UC_OK);
        assert_int_equal(src, UC_FROM_CACHE);
        assert_int_equal(tier, UC_TIER_NEAR);
    }
    uc_stats_t s1 = stats_of(ks);
    assert_int_equal(s1.refills - s0.refills, 5);
    assert_int_equal(s1.refill_hits - s0.refill_hits, 5);
}

/* The rate holds: a burst of writes past it is skipped, counted. */
static void refill_rate_held(void **state)
{
    fx_t *fx = *state;
    uc_cache_t *c = open_cache_refill(fx, -1, 100, 10, 1);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    unsigned truth[NKEYS] = {0};
    char id[32];

    zipf_mix(ks, 3000, truth);
    wait_idle(c, 5000);
    uc_stats_t s0 = stats_of(ks);
    uint64_t t0 = uc_test_now_us();
    for (size_t i = 0; i < 5; i++) {
        id_of(i, id, sizeof(id));
        write_of(ks, id);
    }
    wait_idle(c, 5000);
    double s = (double)(uc_test_now_us() - t0) / 1e6;
    uc_stats_t s1 = stats_of(ks);
    uint64_t made = s1.refills - s0.refills;
    uint64_t skipped = s1.refill_skipped_rate - s0.refill_skipped_rate;
    /* A burst of one, then one a second. */
    assert_true((double)made <= 1.0 + s + 1.0);
    assert_int_equal(made + skipped, 5);
    assert_true(skipped >= 1);
}

/* A failing database pauses refills after 3 failures in a row; with
 * refill_top < 0 nothing is ever queued. */
static void refill_held_back(void **state)
{
    fx_t *fx = *state;
    uc_cache_t *c = open_cache_refill(fx, -1, 100, 10, 1000);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    unsigned truth[NKEYS] = {0};
    char id[32];

    zipf_mix(ks, 3000, truth);
    wait_idle(c, 5000);
    db_reset(&the_db);
    atomic_store(&the_db.fail, 1);
    uc_stats_t s0 = stats_of(ks);
    for (size_t i = 0; i < 4; i++) {
        id_of(i, id, sizeof(id));
        write_of(ks, id);
        wait_idle(c, 5000);
    }
    uc_stats_t s1 = stats_of(ks);
    assert_int_equal(atomic_load(&the_db.calls), 3);
    assert_int_equal(s1.refills - s0.refills, 0);
    assert_int_equal(s1.refill_skipped_breaker - s0.refill_skipped_breaker, 1);
    uc_cache_destroy(fx->c);

    fx->c = open_cache_refill(fx, -1, 100, -1, 100);
    ks = uc_cache_keyspace(fx->c, "ws");
    memset(truth, 0, sizeof(truth));
    atomic_store(&the_db.fail, 0);
    zipf_mix(ks, 1000, truth);
    db_reset(&the_db);
    write_of(ks, "id-0");
    wait_idle(fx->c, 5000);
    assert_int_equal(atomic_load(&the_db.calls), 0);
    s1 = stats_of(ks);
    assert_int_equal(s1.refills + s1.refill_skipped_cold, 0);
}

static int read_page(uc_keyspace_t *ks, const char *id, const char *n,
                     uc_source_t *src)
{
    const char *f[2] = {id, n};
    uc_load_result_t r;
    int rc = uc_keyspace_get_or_load(ks, f, 2, NULL, &r);
    if (rc == UC_OK) {
        *src = r.source;
        uc_free(r.data);
    }
    return rc;
}

/* A tag several hot entries carry: only the most read of them is refilled
 * (the others would cost a load per write for fewer reads); a tag no hot
 * entry carries is a cold skip of each keyspace it could belong to. */
static void refill_tag_hottest_only(void **state)
{
    fx_t *fx = *state;
    uc_cache_t *c = open_cache_refill(fx, -1, 100, 10, 100);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "wp");
    uc_source_t src = UC_FROM_FALLBACK;
    static const struct {
        const char *id, *n;
        int reads;
    } pages[] = {{"id-7", "2", 10}, {"id-7", "1", 30}, {"id-8", "1", 5}};

    for (size_t p = 0; p < 3; p++) {
        for (int i = 0; i < pages[p].reads; i++) {
            assert_int_equal(read_page(ks, pages[p].id, pages[p].n, &src),
                             UC_OK);
        }
    }
    wait_idle(c, 5000);
    db_reset(&the_db);
    uc_stats_t s0 = stats_of(ks);
    assert_int_equal(uc_cache_invalidate_tag(c, "item:id-7"), UC_OK);
    wait_idle(c, 5000);
    uc_stats_t s1 = stats_of(ks);
    assert_int_equal(s1.refills - s0.refills, 1);
    assert_int_equal(atomic_load(&the_db.calls), 1);
    assert_int_equal(read_page(ks, "id-7", "1", &src), UC_OK);
    assert_int_equal(src, UC_FROM_CACHE);
    assert_int_equal(atomic_load(&the_db.calls), 1);
    /* the less read page of the same item was dropped, not refilled */
    assert_int_equal(read_page(ks, "id-7", "2", &src), UC_OK);
    assert_int_equal(src, UC_FROM_LOADER);
    assert_int_equal(atomic_load(&the_db.calls), 2);
    /* the other item's page was not touched */
    assert_int_equal(read_page(ks, "id-8", "1", &src), UC_OK);
    assert_int_equal(src, UC_FROM_CACHE);

    uc_stats_t s2 = stats_of(ks);
    assert_int_equal(uc_cache_invalidate_tag(c, "item:id-99"), UC_OK);
    wait_idle(c, 5000);
    uc_stats_t s3 = stats_of(ks);
    assert_int_equal(s3.refill_skipped_cold - s2.refill_skipped_cold, 1);
    assert_int_equal(s3.refills, s2.refills);
    assert_int_equal(atomic_load(&the_db.calls), 2);
}

/* A write waits for its refill at most UTXOCACHE_REFILL_WAIT_MS (1 s
 * here): past it, the write returns, counted, and the refill goes on. */
static void refill_wait_bounded(void **state)
{
    fx_t *fx = *state;
    uc_cache_t *c = open_cache_refill(fx, -1, 100, 10, 100);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    unsigned truth[NKEYS] = {0};
    uc_source_t src = UC_FROM_FALLBACK;

    zipf_mix(ks, 3000, truth);
    wait_idle(c, 5000);
    db_reset(&the_db);
    uc_stats_t s0 = stats_of(ks);

    /* A load of 2 s: the write cannot have waited for it. */
    atomic_store(&the_db.delay_ms, 2000);
    write_of(ks, "id-0");
    uc_stats_t s1 = stats_of(ks);
    assert_int_equal(s1.refill_wait_timeouts - s0.refill_wait_timeouts, 1);
    assert_int_equal(s1.refills - s0.refills, 0);
    wait_idle(c, 10000);
    uc_stats_t s2 = stats_of(ks);
    assert_int_equal(s2.refills - s0.refills, 1);
    assert_int_equal(atomic_load(&the_db.calls), 1);

    /* A quick load: the write waits for it, nothing timed out, and the
     * read after the write is a hit. */
    atomic_store(&the_db.delay_ms, 0);
    write_of(ks, "id-0");
    uc_stats_t s3 = stats_of(ks);
    assert_int_equal(s3.refills - s2.refills, 1);
    assert_int_equal(s3.refill_wait_timeouts, s2.refill_wait_timeouts);
    assert_int_equal(read_src(ks, "id-0", &src), UC_OK);
    assert_int_equal(src, UC_FROM_CACHE);
    assert_int_equal(atomic_load(&the_db.calls), 2);
}

/* A second instance starting on the same Redis warms what the first read
 * most, from the list the first published: its record holds them, and
 * since they are in Redis already its warm loads nothing. */
static void start_warms_from_shared_list(void **state)
{
    fx_t *fx = *state;
    enum { TOP = 30 };
    uc_cache_t *a = open_cache(fx, TOP, 1000);
    uc_keyspace_t *ks = uc_cache_keyspace(a, "ws");
    unsigned truth[NKEYS] = {0};
    uc_hot_entry_t top[TOP];

    zipf_mix(ks, 3000, truth);
    wait_idle(a, 5000);
    uc__warm_publish(a);
    redisReply *r = raw_cmd(fx, "EXISTS uc:hot:ws");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);

    db_reset(&the_db);
    fx->c = NULL;
    uc_cache_t *b = open_cache(fx, TOP, 1000);
    uc_keyspace_t *kb = uc_cache_keyspace(b, "ws");
    uint64_t until = uc_test_now_ms() + 5000;
    while (stats_of(kb).warm_hits < TOP && uc_test_now_ms() < until) {
        uc_test_sleep_ms(20);
    }
    wait_idle(b, 5000);
    uc_stats_t s = stats_of(kb);
    assert_true(uc_keyspace_hot(kb, top, TOP) >= TOP);
    assert_int_equal(s.warm_hits, TOP);
    assert_int_equal(s.warm_loads, 0);
    assert_int_equal(atomic_load(&the_db.calls), 0);
    uc_cache_destroy(a);
}

/* Reads id through ks into buf (NUL-terminated). */
static void read_value(uc_keyspace_t *ks, const char *id, char *buf, size_t cap)
{
    const char *f[1] = {id};
    uc_load_result_t r;
    assert_int_equal(uc_keyspace_get_or_load(ks, f, 1, NULL, &r), UC_OK);
    snprintf(buf, cap, "%.*s", (int)r.len, r.data);
    uc_free(r.data);
}

/* Two instances: the writer refills, once; the other one loads nothing
 * and reads the new value (its near copy invalidated by the channel). */
static void refill_once_across_instances(void **state)
{
    fx_t *fx = *state;
    uc_cache_t *a = open_cache_refill(fx, -1, 100, 10, 100);
    fx->c = NULL;
    uc_cache_t *b = open_cache_refill(fx, -1, 100, 10, 100);
    uc_keyspace_t *ka = uc_cache_keyspace(a, "ws");
    uc_keyspace_t *kb = uc_cache_keyspace(b, "ws");
    unsigned truth[NKEYS] = {0};
    char want[64], got[64];

    zipf_mix(ka, 3000, truth);
    memset(truth, 0, sizeof(truth));
    zipf_mix(kb, 3000, truth);
    wait_idle(a, 5000);
    wait_idle(b, 5000);
    read_value(kb, "id-0", got, sizeof(got));
    db_reset(&the_db);
    uc_stats_t sa0 = stats_of(ka), sb0 = stats_of(kb);

    /* The write: the database changes, then the writer invalidates. */
    atomic_fetch_add(&the_db.version, 1);
    snprintf(want, sizeof(want), "value of id-0 v%u",
             atomic_load(&the_db.version));
    write_of(ka, "id-0");
    wait_idle(a, 5000);
    /* Bounded: the invalidation lag, milliseconds. */
    uint64_t until = uc_test_now_ms() + 2000;
    for (;;) {
        read_value(kb, "id-0", got, sizeof(got));
        if (strcmp(got, want) == 0 || uc_test_now_ms() >= until) {
            break;
        }
        uc_test_sleep_ms(5);
    }
    assert_string_equal(got, want);
    uc_stats_t sa1 = stats_of(ka), sb1 = stats_of(kb);
    assert_int_equal(sa1.refills - sa0.refills, 1);
    assert_int_equal(sb1.refills - sb0.refills, 0);
    assert_int_equal(sb1.loads - sb0.loads, 0);
    assert_int_equal(atomic_load(&the_db.calls), 1);
    uc_cache_destroy(a);
}

static void warming_off(void **state)
{
    fx_t *fx = *state;
    uc_cache_t *c = open_cache(fx, -1, 100);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "ws");
    unsigned truth[NKEYS] = {0};

    zipf_mix(ks, 300, truth);
    assert_true(uc_keyspace_hot(ks, NULL, 0) > 0); /* still recorded */
    assert_int_equal(uc_cache_warm(c), UC_ENOTSUP);
    db_reset(&the_db);
    freeReplyObject(raw_cmd(fx, "FLUSHALL"));
    uc_test_sleep_ms(1000);
    assert_false(uc__warm_busy(c));
    assert_int_equal(atomic_load(&the_db.calls), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(flushall_refills_top, setup, teardown),
        cmocka_unit_test_setup_teardown(rate_limit_held, setup, teardown),
        cmocka_unit_test_setup_teardown(warm_on_demand, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_loader_gives_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(cache_down_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(warming_off, setup, teardown),
        cmocka_unit_test_setup_teardown(start_warms_from_shared_list, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(refill_after_write, setup, teardown),
        cmocka_unit_test_setup_teardown(refill_after_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(refill_tag_hottest_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(refill_lands_near, setup, teardown),
        cmocka_unit_test_setup_teardown(refill_once_across_instances, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(refill_rate_held, setup, teardown),
        cmocka_unit_test_setup_teardown(refill_held_back, setup, teardown),
        cmocka_unit_test_setup_teardown(refill_wait_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
