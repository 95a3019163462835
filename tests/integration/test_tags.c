/* SPDX-License-Identifier: MIT */
/*
 * Tags through the library's API, on the memory store, on a real
 * redis-server of the test's own (with and without the near cache; two
 * handles on one server standing for two instances) and on a real Redis
 * Cluster:
 *
 *   - tags are validated when declared and built with the keys' escaping;
 *   - invalidating a tag makes exactly the entries carrying it misses (the
 *     loader runs again), in every keyspace, while the others stay hits;
 *   - a deleted tag version reads as changed, never as unchanged;
 *   - the other instance sees the invalidation (its near cache within the
 *     invalidation lag; on the memory store through the log's tail);
 *   - the durable log: a pending tag record bypasses every entry carrying
 *     the tag until the worker applied it; a failed invalidation too;
 *   - remembered "not found", serve-stale and uc_keyspace_set follow tags;
 *     an entry of the earlier envelope format is replaced, not an error;
 *   - the read path's cost in commands (INFO commandstats): a tagged hit
 *     is one GETRANGE for the entry and one per tag without the near
 *     cache, nothing with it; and no invalidation sends SCAN;
 *   - a restored dataset loses its tag versions with its entries.
 *
 * The loader stands for the database: a version counter that a write
 * bumps before it invalidates.
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
#include <time.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cache_int.h"
#include "redis_cluster.h"
#include "redis_fixture.h"
#include "util.h"

typedef enum { M_MEMORY = 0, M_REDIS = 1, M_NEAR = 2 } mode_t_;

/* ---- the "database" ------------------------------------------------------ */

typedef struct {
    _Atomic int version;
    _Atomic int calls;
    _Atomic int fail;     /* nonzero: the loader fails */
    _Atomic int missing;  /* nonzero: the entity does not exist */
    _Atomic int gate;     /* nonzero: loads wait (at most 5 s) until 0 */
    _Atomic int inflight; /* loads running now */
} db_t;

static db_t db;

/* "v<version>:<first field>" */
static int load(void *arg, const char *const *fields, size_t nfields,
                char **val, size_t *len)
{
    char buf[128];
    int v, n;
    (void)arg;

    atomic_fetch_add(&db.calls, 1);
    /* The version is read first, as a query would. */
    v = atomic_load(&db.version);
    atomic_fetch_add(&db.inflight, 1);
    for (int i = 0; i < 5000 && atomic_load(&db.gate); i++) {
        uc_test_sleep_ms(1);
    }
    atomic_fetch_sub(&db.inflight, 1);
    if (atomic_load(&db.fail)) {
        return -1000;
    }
    if (atomic_load(&db.missing)) {
        return UC_MISS;
    }
    n = snprintf(buf, sizeof(buf), "v%d:%s", v, nfields > 0 ? fields[0] : "");
    *val = malloc((size_t)n + 1);
    if (*val == NULL) {
        return UC_ENOMEM;
    }
    memcpy(*val, buf, (size_t)n + 1);
    *len = (size_t)n;
    return UC_OK;
}

static const char *const TAGS_INSIGHT[] = {"insight:{insight}", NULL};
static const char *const TAGS_USER[] = {"user:{user}", NULL};
static const char *const TAGS_JOB[] = {"job:{id}", NULL};
static const char *const TAGS_TWO[] = {"a:{a}", "b:{b}", "two:all", NULL};

static const uc_keyspace_def_t defs[] = {
    {.name = "fb",
     .pattern = "fb:stats:{insight}",
     .ttl_s = 600,
     .loader = load,
     .tags = TAGS_INSIGHT},
    {.name = "cm",
     .pattern = "fb:comments:{insight}:{page}",
     .ttl_s = 600,
     .loader = load,
     .tags = TAGS_INSIGHT},
    {.name = "us",
     .pattern = "fb:user:{user}:{page}",
     .ttl_s = 600,
     .loader = load,
     .tags = TAGS_USER},
    {.name = "plain", .pattern = "plain:{id}", .ttl_s = 600, .loader = load},
    {.name = "neg",
     .pattern = "neg:{id}",
     .ttl_s = 600,
     .negative_ttl_s = 60,
     .loader = load,
     .tags = TAGS_JOB},
    {.name = "short",
     .pattern = "short:{insight}",
     .ttl_s = 1,
     .jitter_pct = UC_KEYSPACE_NONE,
     .refresh_beta = -1.0,
     .tags = TAGS_INSIGHT},
    {.name = "two",
     .pattern = "two:{a}:{b}",
     .ttl_s = 600,
     .loader = load,
     .tags = TAGS_TWO},
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

/* ---- an in-memory invalidation log --------------------------------------- */

#define LOG_MAX 64

typedef struct {
    pthread_mutex_t mu;
    uc_inval_record_t recs[LOG_MAX];
    size_t n;
    int64_t next_id;
} tlog_t;

static int64_t tlog_append(tlog_t *m, const char *ks, const char *target)
{
    int64_t id;

    pthread_mutex_lock(&m->mu);
    assert_true(m->n < LOG_MAX);
    uc_inval_record_t *r = &m->recs[m->n++];
    r->id = id = m->next_id++;
    snprintf(r->keyspace, sizeof(r->keyspace), "%s", ks);
    snprintf(r->target, sizeof(r->target), "%s", target);
    r->applied = 0;
    pthread_mutex_unlock(&m->mu);
    return id;
}

static size_t tlog_select(tlog_t *m, int pending, int64_t after,
                          uc_inval_record_t *out, size_t cap)
{
    size_t k = 0;

    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n && k < cap; i++) {
        if (pending ? !m->recs[i].applied : m->recs[i].id > after) {
            out[k++] = m->recs[i];
        }
    }
    pthread_mutex_unlock(&m->mu);
    return k;
}

static int tl_after(void *arg, int64_t after, uc_inval_record_t *out,
                    size_t cap, size_t *n)
{
    *n = tlog_select(arg, 0, after, out, cap);
    return UC_OK;
}

static int tl_pending(void *arg, uc_inval_record_t *out, size_t cap, size_t *n)
{
    *n = tlog_select(arg, 1, 0, out, cap);
    return UC_OK;
}

static int tl_mark(void *arg, const int64_t *ids, size_t n, uint64_t now_ms)
{
    tlog_t *m = arg;
    (void)now_ms;

    pthread_mutex_lock(&m->mu);
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < m->n; i++) {
            if (m->recs[i].id == ids[j]) {
                m->recs[i].applied = 1;
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    return UC_OK;
}

static int tl_prune(void *arg, uint64_t before_ms)
{
    (void)arg;
    (void)before_ms;
    return UC_OK;
}

static int tl_last(void *arg, int64_t *id)
{
    tlog_t *m = arg;

    pthread_mutex_lock(&m->mu);
    *id = m->next_id - 1;
    pthread_mutex_unlock(&m->mu);
    return UC_OK;
}

static const uc_invlog_ops_t tlog_ops = {tl_after, tl_pending, tl_mark,
                                         tl_prune, tl_last};

static int tlog_applied(tlog_t *m, int64_t id)
{
    int applied = 0;

    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++) {
        if (m->recs[i].id == id) {
            applied = m->recs[i].applied;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return applied;
}

/* ---- fixture ------------------------------------------------------------- */

typedef struct {
    mode_t_ mode;
    uc_test_fixture_t *f;
    uc_cache_t *a, *b; /* two instances */
    tlog_t log;
    int tail_ms; /* the worker's tick; 0: it sleeps through the test */
} fx_t;

static uc_cache_t *open_one(fx_t *x)
{
    uc_config_t cfg;
    char err[256];
    uc_cache_t *c;

    if (x->mode == M_MEMORY) {
        uc_config_init(&cfg);
        /* Refills after writes would make the misses these tests expect hits.
         */
        cfg.refill_top = -1;
        cfg.backend = UC_BACKEND_MEMORY;
    } else {
        uc_test_redis_config(&cfg, x->f->r.port);
        cfg.command_timeout_ms = 200;
        cfg.breaker_threshold = 1000;
        cfg.near_off = x->mode != M_NEAR;
    }
    /* Unless a test needs the worker's tail, the worker sleeps through it
     * and the test applies what is pending itself (uc__pending_retry). */
    cfg.log_tail_ms = x->tail_ms > 0 ? x->tail_ms : 600000;
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

static void wait_healthy(uc_cache_t *c, unsigned ms)
{
    uint64_t until = uc_test_now_ms() + ms;
    while (!healthy(c) && uc_test_now_ms() < until) {
        uc_test_sleep_ms(5);
    }
    assert_true(healthy(c));
}

static int setup_mode(void **state, mode_t_ mode)
{
    fx_t *x = calloc(1, sizeof(*x));

    if (x == NULL || uc_test_fixture_setup((void **)&x->f) != 0) {
        free(x);
        return -1;
    }
    x->mode = mode;
    pthread_mutex_init(&x->log.mu, NULL);
    x->log.next_id = 1;
    *state = x;
    return 0;
}

static int setup_memory(void **state)
{
    return setup_mode(state, M_MEMORY);
}

static int setup_redis(void **state)
{
    return setup_mode(state, M_REDIS);
}

static int setup_near(void **state)
{
    return setup_mode(state, M_NEAR);
}

static int teardown(void **state)
{
    fx_t *x = *state;
    void *f = x->f;

    uc_cache_destroy(x->a);
    uc_cache_destroy(x->b);
    pthread_mutex_destroy(&x->log.mu);
    free(x);
    return uc_test_fixture_teardown(&f);
}

/* Each test: a fresh server (not for memory), two handles, both attached
 * to the test's log; their workers tick every tail_ms (0: not during the
 * test). */
static fx_t *start_with(void **state, int tail_ms)
{
    fx_t *x = *state;
    char err[256];

    x->tail_ms = tail_ms;

    memset(&db, 0, sizeof(db));
    if (x->mode != M_MEMORY) {
        uc_test_fixture_start(x->f, NULL);
    }
    x->a = open_one(x);
    x->b = open_one(x);
    assert_int_equal(
        uc_cache_attach_log(x->a, &tlog_ops, &x->log, err, sizeof(err)), UC_OK);
    assert_int_equal(
        uc_cache_attach_log(x->b, &tlog_ops, &x->log, err, sizeof(err)), UC_OK);
    if (x->mode == M_NEAR) {
        wait_healthy(x->a, 3000);
        wait_healthy(x->b, 3000);
    }
    if (x->mode != M_MEMORY) {
        /* Both have adopted the dataset before the test's reads. */
        const char *f[1] = {"warm-up"};
        uc_load_result_t r;
        for (int i = 0; i < 2; i++) {
            uc_cache_t *c = i == 0 ? x->a : x->b;
            assert_int_equal(uc_keyspace_get_or_load(
                                 uc_cache_keyspace(c, "plain"), f, 1, NULL, &r),
                             UC_OK);
            uc_free(r.data);
        }
    }
    return x;
}

static fx_t *start(void **state)
{
    return start_with(state, 0);
}

/* ---- reads --------------------------------------------------------------- */

typedef struct {
    int rc;
    uc_source_t source;
    uc_tier_t tier;
    int version; /* -1 when no value */
} read_t;

static read_t rd2(uc_cache_t *c, const char *ks, const char *f0, const char *f1)
{
    uc_keyspace_t *k = uc_cache_keyspace(c, ks);
    const char *f[2] = {f0, f1};
    uc_load_opts_t o = UC_LOAD_OPTS_INIT;
    uc_load_result_t r;
    read_t out = {0, 0, 0, -1};

    o.loader = load;
    out.rc = uc_keyspace_get_or_load(k, f, uc_keyspace_nfields(k), &o, &r);
    if (out.rc == UC_OK) {
        out.source = r.source;
        out.tier = r.tier;
        out.version = atoi(r.data + 1);
        uc_free(r.data);
    }
    return out;
}

static read_t rd(uc_cache_t *c, const char *ks, const char *f0)
{
    return rd2(c, ks, f0, "1");
}

/* A hit of the current contents: from the near cache in M_NEAR (read until
 * it is), else from the store. */
static read_t warm(fx_t *x, uc_cache_t *c, const char *ks, const char *f0,
                   const char *f1)
{
    read_t r = rd2(c, ks, f0, f1);

    for (int i = 0; i < 200; i++) {
        r = rd2(c, ks, f0, f1);
        assert_int_equal(r.rc, UC_OK);
        if (r.source == UC_FROM_CACHE &&
            (x->mode != M_NEAR || r.tier == UC_TIER_NEAR)) {
            return r;
        }
        uc_test_sleep_ms(2);
    }
    fail_msg("'%s' %s: no %s hit after 200 reads", ks, f0,
             x->mode == M_NEAR ? "near" : "cache");
    return r;
}

static void expect(read_t r, uc_source_t source, int version)
{
    assert_int_equal(r.rc, UC_OK);
    if (r.source != source || r.version != version) {
        fail_msg("read: source %d version %d, wanted source %d version %d",
                 r.source, r.version, source, version);
    }
}

/* Reads until the value is at least `version` (bounded by the near cache's
 * invalidation lag, 1 s); returns how long it took (ms). */
static uint64_t until_version(uc_cache_t *c, const char *ks, const char *f0,
                              const char *f1, int version)
{
    uint64_t t0 = uc_test_now_ms();
    read_t r;

    do {
        r = rd2(c, ks, f0, f1);
        assert_int_equal(r.rc, UC_OK);
        if (r.version >= version) {
            return uc_test_now_ms() - t0;
        }
        uc_test_sleep_ms(1);
    } while (uc_test_now_ms() - t0 < 1000);
    fail_msg("'%s' %s still at version %d after 1 s (wanted %d)", ks, f0,
             r.version, version);
    return 0;
}

static uint64_t stat_of(uc_cache_t *c, const char *ks, size_t off)
{
    uc_stats_t s;
    uc_keyspace_stats(uc_cache_keyspace(c, ks), &s);
    return *(const uint64_t *)(const void *)((const char *)&s + off);
}
#define STAT(c, ks, field) stat_of((c), (ks), offsetof(uc_stats_t, field))

/* A write: the database changes, then the tag is invalidated. */
static void write_tag(uc_cache_t *c, const char *tag)
{
    atomic_fetch_add(&db.version, 1);
    assert_int_equal(uc_cache_invalidate_tag(c, tag), UC_OK);
}

/* ---- declarations (no server) -------------------------------------------- */

static void test_declare(void **state)
{
    static const char *const unknown[] = {"insight:{nope}", NULL};
    static const char *const five[] = {"a", "b", "c", "d", "e", NULL};
    static const char *const empty[] = {"", NULL};
    static const char *const lead[] = {"{id}:x", NULL};
    static const char *const glued[] = {"x{id}", NULL};
    static const char *const star[] = {"x:*", NULL};
    static const char *const ok[] = {"x:{id}:{b}", "all", NULL};
    struct {
        const char *const *tags;
        int rc;
        const char *msg;
    } cases[] = {
        {unknown, UC_EINVAL, "unknown field"},
        {five, UC_EINVAL, "too many tags"},
        {empty, UC_EINVAL, "empty"},
        {lead, UC_EINVAL, "literal"},
        {glued, UC_EINVAL, "follow ':'"},
        {star, UC_EINVAL, "literal text"},
        {ok, UC_OK, ""},
    };
    uc_config_t cfg;
    uc_cache_t *c;
    char err[256], buf[UC_KEY_MAX + 1];
    size_t len;
    (void)state;

    uc_config_init(&cfg);
    /* Refills after writes would make the misses these tests expect hits. */
    cfg.refill_top = -1;

    cfg.backend = UC_BACKEND_MEMORY;
    c = uc_test_open_cache(&cfg);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[16];
        uc_keyspace_def_t d = {.pattern = "k:{id}:{b}", .ttl_s = 60};
        snprintf(name, sizeof(name), "k%zu", i);
        d.name = name;
        d.tags = cases[i].tags;
        err[0] = '\0';
        assert_int_equal(uc_cache_add_keyspaces(c, &d, 1, err, sizeof(err)),
                         cases[i].rc);
        if (cases[i].rc != UC_OK && strstr(err, cases[i].msg) == NULL) {
            fail_msg("case %zu: message '%s' lacks '%s'", i, err, cases[i].msg);
        }
    }
    /* Escaped as keys are; fields the tag does not use may be NULL. */
    uc_keyspace_t *ks = uc_cache_keyspace(c, "k6");
    assert_non_null(ks);
    assert_int_equal(uc_keyspace_ntags(ks), 2);
    assert_string_equal(uc_keyspace_tag_pattern(ks, 1), "all");
    assert_null(uc_keyspace_tag_pattern(ks, 2));
    const char *f[2] = {"a:b*#", "c"};
    assert_int_equal(uc_keyspace_tag(ks, 0, f, 2, buf, sizeof(buf), &len),
                     UC_OK);
    assert_string_equal(buf, "x:a%3Ab%2A%23:c");
    assert_int_equal(len, strlen(buf));
    const char *g[2] = {NULL, NULL};
    assert_int_equal(uc_keyspace_tag(ks, 1, g, 2, buf, sizeof(buf), &len),
                     UC_OK);
    assert_string_equal(buf, "all");
    assert_int_equal(uc_keyspace_tag(ks, 0, g, 2, buf, sizeof(buf), &len),
                     UC_EINVAL);
    assert_int_equal(uc_keyspace_tag(ks, 2, f, 2, buf, sizeof(buf), &len),
                     UC_EINVAL);
    assert_int_equal(uc_keyspace_tag(ks, 0, f, 2, buf, 5, &len), UC_ETOOBIG);
    assert_int_equal(
        uc_keyspace_tag_target(ks, 0, f, 2, buf, sizeof(buf), &len), UC_OK);
    assert_string_equal(buf, "#x:a%3Ab%2A%23:c");
    /* Malformed literal tags are refused, never written. */
    assert_int_equal(uc_cache_invalidate_tag(c, ""), UC_EINVAL);
    assert_int_equal(uc_cache_invalidate_tag(c, "a*b"), UC_EINVAL);
    assert_int_equal(uc_cache_invalidate_tag(c, "#x"), UC_EINVAL);
    assert_int_equal(uc_cache_invalidate_tag(c, "a b"), UC_EINVAL);
    assert_int_equal(uc_cache_invalidate_tag(c, "x:a%3A"), UC_OK);
    uc_cache_destroy(c);
}

/* ---- invalidation -------------------------------------------------------- */

static void test_invalidate(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;

    warm(x, a, "fb", "i1", NULL);
    warm(x, a, "cm", "i1", "1");
    warm(x, a, "cm", "i1", "2");
    warm(x, a, "cm", "i2", "1");
    warm(x, a, "us", "i1", "1"); /* a user named like the insight */
    warm(x, a, "plain", "i1", NULL);
    int calls = atomic_load(&db.calls);

    write_tag(a, "insight:i1");
    /* Every entry carrying the tag, in both keyspaces, is a miss at once
     * (this process's own near copies went before the call returned). */
    expect(rd(a, "fb", "i1"), UC_FROM_LOADER, 1);
    expect(rd2(a, "cm", "i1", "1"), UC_FROM_LOADER, 1);
    expect(rd2(a, "cm", "i1", "2"), UC_FROM_LOADER, 1);
    assert_int_equal(atomic_load(&db.calls), calls + 3);
    /* The others were not touched. */
    expect(rd2(a, "cm", "i2", "1"), UC_FROM_CACHE, 0);
    expect(rd2(a, "us", "i1", "1"), UC_FROM_CACHE, 0);
    expect(rd(a, "plain", "i1"), UC_FROM_CACHE, 0);
    assert_int_equal(atomic_load(&db.calls), calls + 3);
    /* Refilled: hits again, with the new value. */
    expect(warm(x, a, "fb", "i1", NULL), UC_FROM_CACHE, 1);
    expect(warm(x, a, "cm", "i1", "2"), UC_FROM_CACHE, 1);
    /* A superseded value is replaced, not counted as corrupt, and its key
     * was never deleted (no lease was lost). */
    assert_int_equal(STAT(a, "fb", corrupt), 0);
    assert_int_equal(STAT(a, "cm", stale_rejects), 0);
    assert_int_equal(STAT(a, "fb", invalidations), 0);
    uc_stats_t tot;
    uc_cache_stats(a, &tot);
    assert_true(tot.invalidations >= 1);

    /* Several tags: any one of them invalidates. */
    warm(x, a, "two", "x", "y");
    warm(x, a, "two", "x", "z");
    write_tag(a, "b:z");
    expect(rd2(a, "two", "x", "y"), UC_FROM_CACHE, 1);
    expect(rd2(a, "two", "x", "z"), UC_FROM_LOADER, 2);
    write_tag(a, "two:all");
    expect(rd2(a, "two", "x", "y"), UC_FROM_LOADER, 3);
    expect(rd2(a, "two", "x", "z"), UC_FROM_LOADER, 3);
}

/* The second instance sees the first one's invalidation: at once through
 * Redis, within the invalidation lag through its near cache, and through
 * the log's tail on the memory store. */
static void test_other_instance(void **state)
{
    fx_t *x = start_with(state, 20);
    uc_cache_t *a = x->a, *b = x->b;

    warm(x, b, "fb", "i1", NULL);
    warm(x, b, "cm", "i1", "1");
    warm(x, b, "cm", "i2", "1");
    if (x->mode == M_MEMORY) {
        /* A write of instance a: its record in the log, applied there. */
        uc_inval_record_t rec;
        memset(&rec, 0, sizeof(rec));
        atomic_fetch_add(&db.version, 1);
        rec.id = tlog_append(&x->log, "fb", "#insight:i1");
        snprintf(rec.keyspace, sizeof(rec.keyspace), "fb");
        snprintf(rec.target, sizeof(rec.target), "#insight:i1");
        assert_int_equal(uc_cache_apply_invalidations(a, &rec, 1, NULL), UC_OK);
        /* b's worker tails the log (every 20 ms). */
        until_version(b, "fb", "i1", NULL, 1);
        until_version(b, "cm", "i1", "1", 1);
        expect(rd2(b, "cm", "i2", "1"), UC_FROM_CACHE, 0);
        return;
    }
    write_tag(a, "insight:i1");
    if (x->mode == M_REDIS) {
        expect(rd(b, "fb", "i1"), UC_FROM_LOADER, 1);
        expect(rd2(b, "cm", "i1", "1"), UC_FROM_LOADER, 1);
    } else {
        uint64_t lag = until_version(b, "fb", "i1", NULL, 1);
        until_version(b, "cm", "i1", "1", 1);
        fprintf(stderr, "near: the other instance saw the tag after %llu ms\n",
                (unsigned long long)lag);
    }
    expect(rd2(b, "cm", "i2", "1"), UC_FROM_CACHE, 0);
    if (x->mode == M_NEAR) {
        expect(warm(x, b, "cm", "i2", "1"), UC_FROM_CACHE, 0);
    }
}

/* A tag version that is gone (deleted, evicted, expired) reads as changed:
 * its entries are misses, and the refill writes a new version. */
static void test_deleted_version(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;
    const char *tk = "uc:tag:insight:i1";

    warm(x, a, "fb", "i1", NULL);
    warm(x, x->b, "fb", "i1", NULL);
    assert_int_equal(uc_cache_exists(a, tk, strlen(tk)), UC_OK);
    atomic_fetch_add(&db.version, 1);
    if (x->mode == M_MEMORY) {
        assert_int_equal(uc_cache_del(a, tk, strlen(tk), NULL), UC_OK);
    } else {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "DEL %s", "uc:tag:insight:i1");
        assert_int_equal(uc_test_redis_cli(&x->f->r, NULL, cmd, NULL, 0), 0);
    }
    if (x->mode == M_NEAR) {
        /* The delete is no write of this process: both near copies go
         * with Redis' message. */
        until_version(a, "fb", "i1", NULL, 1);
        until_version(x->b, "fb", "i1", NULL, 1);
    } else {
        expect(rd(a, "fb", "i1"), UC_FROM_LOADER, 1);
        if (x->mode == M_REDIS) {
            expect(rd(x->b, "fb", "i1"), UC_FROM_CACHE, 1);
        }
    }
    assert_int_equal(uc_cache_exists(a, tk, strlen(tk)), UC_OK);
    expect(warm(x, a, "fb", "i1", NULL), UC_FROM_CACHE, 1);
    /* A tag's version lives long, but not forever. */
    if (x->mode != M_MEMORY) {
        int64_t ttl = 0;
        assert_int_equal(uc_cache_ttl(a, tk, strlen(tk), &ttl), UC_OK);
        assert_true(ttl > (int64_t)6 * 86400 * 1000);
    }
}

/* A caller that joins, after a write, a load that read the database
 * before it does not take that load's value: the versions it recorded are
 * no longer current, so the caller loads on its own. */
typedef struct {
    uc_cache_t *c;
    read_t r;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *t = arg;
    t->r = rd(t->c, "fb", "j1");
    return NULL;
}

static void test_join_after_write(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *writer = x->mode == M_MEMORY ? x->a : x->b;
    reader_t lead = {x->a, {0, 0, 0, -1}}, join = {x->a, {0, 0, 0, -1}};
    pthread_t t1, t2;

    atomic_store(&db.gate, 1);
    assert_int_equal(pthread_create(&t1, NULL, reader_main, &lead), 0);
    for (int i = 0; i < 2000 && atomic_load(&db.inflight) == 0; i++) {
        uc_test_sleep_ms(1);
    }
    assert_int_equal(atomic_load(&db.inflight), 1);
    write_tag(writer, "insight:j1");
    uc_test_sleep_ms(50); /* past the near cache's invalidation lag */
    uint64_t joins = STAT(x->a, "fb", flight_joins);
    assert_int_equal(pthread_create(&t2, NULL, reader_main, &join), 0);
    for (int i = 0; i < 200 && STAT(x->a, "fb", flight_joins) == joins; i++) {
        uc_test_sleep_ms(1);
    }
    atomic_store(&db.gate, 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    /* The leader's call began before the write: its old value is its
     * answer. The joiner's began after it. */
    expect(lead.r, UC_FROM_LOADER, 0);
    assert_int_equal(join.r.rc, UC_OK);
    assert_int_equal(join.r.version, 1);
    expect(rd(x->a, "fb", "j1"), UC_FROM_CACHE, 1);
}

/* A dataset that is not the one invalidated (here a snapshot restored)
 * loses its tag versions with its entries: an old version it holds would
 * make entries elsewhere (on other nodes of a cluster) current again. */
static void test_restored_versions_dropped(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;
    const char *tk = "uc:tag:insight:i1";
    char *old = NULL, *now = NULL;
    size_t oldlen = 0, nowlen = 0;

    warm(x, a, "fb", "i1", NULL);
    assert_int_equal(uc_cache_get(a, tk, strlen(tk), &old, &oldlen), UC_OK);
    assert_int_equal(uc_test_redis_cli(&x->f->r, NULL, "SAVE", NULL, 0), 0);
    write_tag(a, "insight:i1");
    uc_test_redis_kill(&x->f->r);
    assert_int_equal(uc_test_redis_restart(&x->f->r), 0);
    expect(rd(a, "fb", "i1"), UC_FROM_LOADER, 1);
    expect(rd(a, "fb", "i1"), UC_FROM_CACHE, 1);
    assert_int_equal(uc_cache_get(a, tk, strlen(tk), &now, &nowlen), UC_OK);
    assert_false(nowlen == oldlen && memcmp(now, old, oldlen) == 0);
    uc_free(old);
    uc_free(now);
}

/* ---- the durable log and pending invalidations --------------------------- */

static void test_pending_record(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;
    uc_inval_record_t recs[LOG_MAX];
    size_t n;

    warm(x, a, "fb", "i1", NULL);
    warm(x, a, "cm", "i1", "1");
    warm(x, a, "cm", "i2", "1");
    /* A writer committed and crashed before it applied its record, which
     * names another keyspace than some entries carrying the tag. */
    atomic_fetch_add(&db.version, 1);
    int64_t id = tlog_append(&x->log, "cm", "#insight:i1");
    n = tlog_select(&x->log, 1, 0, recs, LOG_MAX);
    assert_int_equal(n, 1);
    uc__pending_from_log(a, recs, n, 0, uc__now_us(&a->env));
    expect(rd(a, "fb", "i1"), UC_FROM_BYPASS, 1);
    expect(rd2(a, "cm", "i1", "1"), UC_FROM_BYPASS, 1);
    expect(rd2(a, "cm", "i2", "1"), UC_FROM_CACHE, 0);
    uc_stats_t tot;
    uc_cache_stats(a, &tot);
    assert_int_equal(tot.pending_invalidations, 1);
    /* The worker's retry applies it (a new version) and marks it. */
    uc__pending_retry(a);
    assert_true(tlog_applied(&x->log, id));
    uc_cache_stats(a, &tot);
    assert_int_equal(tot.pending_invalidations, 0);
    expect(rd(a, "fb", "i1"), UC_FROM_LOADER, 1);
    expect(warm(x, a, "fb", "i1", NULL), UC_FROM_CACHE, 1);
    expect(rd2(a, "cm", "i2", "1"), UC_FROM_CACHE, 0);

    /* A writer that applies its own records after the commit: a record
     * naming no keyspace is a tag's all the same. */
    uc_inval_record_t rec;
    memset(&rec, 0, sizeof(rec));
    atomic_fetch_add(&db.version, 1);
    rec.id = tlog_append(&x->log, "", "#insight:i2");
    snprintf(rec.target, sizeof(rec.target), "#insight:i2");
    size_t applied = 0;
    assert_int_equal(uc_cache_apply_invalidations(a, &rec, 1, &applied), UC_OK);
    assert_int_equal(applied, 1);
    expect(rd2(a, "cm", "i2", "1"), UC_FROM_LOADER, 2);
    expect(rd(a, "fb", "i1"), UC_FROM_CACHE, 1);
    /* A malformed tag target is refused and not kept pending. */
    snprintf(rec.target, sizeof(rec.target), "#a*b");
    rec.id = 0;
    assert_int_equal(uc_cache_apply_invalidations(a, &rec, 1, &applied),
                     UC_EINVAL);
    assert_int_equal(applied, 0);
    uc_cache_stats(a, &tot);
    assert_int_equal(tot.pending_invalidations, 0);
}

/* A tag invalidation that fails stays pending: reads of its entries bypass
 * the cache until the worker applied it. */
static void test_failed_invalidation(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;

    warm(x, a, "fb", "i1", NULL);
    warm(x, a, "fb", "i2", NULL);
    atomic_fetch_add(&db.version, 1);
    assert_int_equal(uc_test_redis_signal(&x->f->r, SIGSTOP), 0);
    int rc = uc_cache_invalidate_tag(a, "insight:i1");
    assert_int_equal(uc_test_redis_signal(&x->f->r, SIGCONT), 0);
    assert_true(rc < 0);
    expect(rd(a, "fb", "i1"), UC_FROM_BYPASS, 1);
    expect(rd(a, "fb", "i2"), UC_FROM_CACHE, 0);
    uc__pending_retry(a);
    expect(rd(a, "fb", "i1"), UC_FROM_LOADER, 1);
    expect(rd(a, "fb", "i1"), UC_FROM_CACHE, 1);
    assert_true(STAT(a, "fb", invalidation_failures) == 0);
    uc_stats_t tot;
    uc_cache_stats(a, &tot);
    assert_true(tot.invalidation_failures >= 1);
    assert_true(tot.invalidations_applied_late >= 1);
}

/* ---- what else carries tags ---------------------------------------------- */

/* A remembered "not found" carries its tags: creating the entity
 * invalidates it through its tag. */
static void test_negative(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;

    atomic_store(&db.missing, 1);
    assert_int_equal(rd(a, "neg", "j1").rc, UC_MISS);
    int calls = atomic_load(&db.calls);
    assert_int_equal(rd(a, "neg", "j1").rc, UC_MISS);
    assert_int_equal(atomic_load(&db.calls), calls);
    atomic_store(&db.missing, 0);
    write_tag(a, "job:j1");
    expect(rd(a, "neg", "j1"), UC_FROM_LOADER, 1);
    expect(rd(a, "neg", "j1"), UC_FROM_CACHE, 1);
}

/* A value past its TTL is served when the loader fails, unless a tag of it
 * was invalidated since: stale never means older than an acknowledged
 * write. */
static void test_stale(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;

    expect(rd(a, "short", "s1"), UC_FROM_LOADER, 0);
    expect(rd(a, "short", "s2"), UC_FROM_LOADER, 0);
    uc_test_sleep_ms(1100);
    atomic_store(&db.fail, 1);
    read_t r = rd(a, "short", "s1");
    assert_int_equal(r.rc, UC_OK);
    assert_int_equal(r.source, UC_FROM_STALE);
    write_tag(a, "insight:s2");
    assert_int_equal(rd(a, "short", "s2").rc, -1000);
    assert_int_equal(rd(a, "short", "s2").rc, -1000);
    atomic_store(&db.fail, 0);
    expect(rd(a, "short", "s2"), UC_FROM_LOADER, 1);
}

/* uc_keyspace_set records the versions current when it runs. */
static void test_set(void **state)
{
    fx_t *x = start(state);
    uc_keyspace_t *ks = uc_cache_keyspace(x->a, "fb");
    const char *f[1] = {"i9"};
    char *v = NULL;
    size_t len = 0;

    assert_int_equal(uc_keyspace_set(ks, f, 1, "set", 3), UC_OK);
    assert_int_equal(uc_keyspace_get(ks, f, 1, &v, &len), UC_OK);
    assert_string_equal(v, "set");
    uc_free(v);
    assert_int_equal(uc_cache_invalidate_tag(x->a, "insight:i9"), UC_OK);
    assert_int_equal(uc_keyspace_get(ks, f, 1, &v, &len), UC_MISS);
    expect(rd(x->a, "fb", "i9"), UC_FROM_LOADER, 0);
    assert_int_equal(uc_keyspace_get(ks, f, 1, &v, &len), UC_OK);
    uc_free(v);
}

/* An entry of the envelope's first format (no tag versions) is a miss that
 * the fill replaces, neither an error nor corrupt. */
static void test_old_format(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;
    char old[64];
    const char *key = "fb:stats:i5";

    memset(old, 0, sizeof(old));
    memcpy(old, "UCE\x01", 4);
    memcpy(old + 44, "v9:i5", 5);
    assert_int_equal(uc_cache_set(a, key, strlen(key), old, 49, 0), UC_OK);
    expect(rd(a, "fb", "i5"), UC_FROM_LOADER, 0);
    expect(rd(a, "fb", "i5"), UC_FROM_CACHE, 0);
    assert_int_equal(STAT(a, "fb", corrupt), 0);
    assert_int_equal(STAT(a, "fb", errors), 0);
}

/* ---- what a read and an invalidation cost -------------------------------- */

/* calls= of one command in INFO commandstats ("getrange", "scan"). */
static long long cmd_calls(int port, const char *cmd)
{
    struct timeval tv = {2, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
    char want[64];
    long long n = 0;

    assert_non_null(rc);
    assert_int_equal(rc->err, 0);
    redisSetTimeout(rc, tv);
    redisReply *r = redisCommand(rc, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(want, sizeof(want), "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, want);
    if (p != NULL) {
        n = atoll(p + strlen(want));
    }
    freeReplyObject(r);
    redisFree(rc);
    return n;
}

typedef struct {
    long long getrange, mget, get, set;
} cmds_t;

static cmds_t cmds_now(fx_t *x)
{
    cmds_t c;
    c.getrange = cmd_calls(x->f->r.port, "getrange");
    c.mget = cmd_calls(x->f->r.port, "mget");
    c.get = cmd_calls(x->f->r.port, "get");
    c.set = cmd_calls(x->f->r.port, "set");
    return c;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * A tagged hit without the near cache: the entry and each of its tags'
 * versions, bounded reads guarded by dataset trust (GETRANGE), one round
 * trip each. With it: nothing at all, the versions being near copies too.
 * Also prints the time of a near hit, tagged and not.
 */
static void test_read_cost(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;
    const int N = 20;

    warm(x, a, "fb", "i1", NULL);
    warm(x, a, "two", "x", "y");
    warm(x, a, "plain", "p", NULL);
    uc_stats_t s0, s1;
    uc_cache_stats(a, &s0);
    cmds_t c0 = cmds_now(x);
    for (int i = 0; i < N; i++) {
        expect(rd(a, "fb", "i1"), UC_FROM_CACHE, 0);
        expect(rd2(a, "two", "x", "y"), UC_FROM_CACHE, 0);
    }
    cmds_t c1 = cmds_now(x);
    uc_cache_stats(a, &s1);
    /* The other handles' heartbeats are SETs; the INFO connections count
     * nothing but INFO. */
    if (x->mode == M_REDIS) {
        /* Each entry, and each of its versions (1 and 3 tags). */
        assert_int_equal(c1.getrange - c0.getrange, (2 + 1 + 3) * N);
        assert_int_equal(c1.mget - c0.mget, 0);
        /* GET is not on the read path; a dataset check may be. */
        assert_true(c1.get - c0.get <= 2);
        return;
    }
    /* Near hits cost nothing; a near cache flushed meanwhile (a heartbeat
     * late on a loaded machine) sends some reads to Redis, which is the
     * case above. */
    if (s1.near_hits - s0.near_hits == 2u * N) {
        assert_int_equal(c1.getrange - c0.getrange, 0);
        assert_int_equal(c1.mget - c0.mget, 0);
        assert_true(c1.get - c0.get <= 2);
    } else {
        fprintf(stderr, "near cache flushed during the count: %llu of %d\n",
                (unsigned long long)(s1.near_hits - s0.near_hits), 2 * N);
    }
    const int M = 20000;
    const char *names[2] = {"fb", "plain"};
    for (int k = 0; k < 2; k++) {
        uc_keyspace_t *ks = uc_cache_keyspace(a, names[k]);
        const char *f[1] = {k == 0 ? "i1" : "p"};
        uc_load_opts_t o = UC_LOAD_OPTS_INIT;
        uc_load_result_t r;
        o.loader = load;
        o.flags = UC_LOAD_SHARED;
        uint64_t best = UINT64_MAX;
        /* The best of 5 rounds (the machine is shared), each from a warm
         * near cache and counted only when all its reads were near hits. */
        for (int round = 0; round < 5; round++) {
            int all_near = 1;
            warm(x, a, names[k], f[0], NULL);
            uint64_t t0 = now_ns();
            for (int i = 0; i < M; i++) {
                int rc = uc_keyspace_get_or_load(ks, f, 1, &o, &r);
                assert_int_equal(rc, UC_OK);
                all_near &= r.tier == UC_TIER_NEAR;
                uc_shared_release(r.data);
            }
            uint64_t t = now_ns() - t0;
            if (all_near && t < best) {
                best = t;
            }
        }
        if (best != UINT64_MAX) {
            fprintf(stderr, "near hit, %s: %.0f ns\n",
                    k == 0 ? "one tag" : "untagged", (double)best / M);
        }
    }
}

/* No invalidation of a tag runs SCAN, whatever the number of entries. */
static void test_no_scan(void **state)
{
    fx_t *x = start(state);
    uc_cache_t *a = x->a;
    char id[16];

    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "p%d", i);
        rd2(a, "cm", "i1", id);
    }
    long long scans = cmd_calls(x->f->r.port, "scan");
    long long sets = cmd_calls(x->f->r.port, "set");
    write_tag(a, "insight:i1");
    uc_inval_record_t rec;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.keyspace, sizeof(rec.keyspace), "cm");
    snprintf(rec.target, sizeof(rec.target), "#insight:i1");
    assert_int_equal(uc_cache_apply_invalidations(a, &rec, 1, NULL), UC_OK);
    assert_int_equal(cmd_calls(x->f->r.port, "scan"), scans);
    /* One write per invalidation (heartbeats of the near cache aside). */
    if (x->mode == M_REDIS) {
        assert_int_equal(cmd_calls(x->f->r.port, "set"), sets + 2);
    }
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "p%d", i);
        assert_int_equal(rd2(a, "cm", "i1", id).source, UC_FROM_LOADER);
    }
}

/* ---- Redis Cluster ------------------------------------------------------- */

/* The cluster and its cache live in the test's state, so that the
 * teardown stops them even when an assertion failed half-way. */
typedef struct {
    uc_test_cluster_t cl;
    uc_cache_t *c;
} cworld_t;

static int setup_cluster(void **state)
{
    cworld_t *w = calloc(1, sizeof(*w));

    *state = w;
    return w != NULL ? 0 : -1;
}

static int teardown_cluster(void **state)
{
    cworld_t *w = *state;

    uc_cache_destroy(w->c);
    uc_test_cluster_stop(&w->cl);
    free(w);
    return 0;
}

/* Entries and tag versions spread over three primaries: a read asks the
 * versions of other nodes, an invalidation is one write on one node. */
static void cluster_case(cworld_t *w, int near)
{
    char url[64], err[256];
    uc_config_t cfg;
    char id[16], ins[16];

    memset(&db, 0, sizeof(db));
    uc_config_init(&cfg);
    /* Refills after writes would make the misses these tests expect hits. */
    cfg.refill_top = -1;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", w->cl.node[0].port);
    assert_int_equal(uc_config_parse_url(&cfg, url, err, sizeof(err)), UC_OK);
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "t%d:", near);
    cfg.backend = UC_BACKEND_REDIS;
    cfg.near_off = !near;
    cfg.log_tail_ms = 600000;
    assert_int_equal(uc_cache_create(&cfg, &w->c, err, sizeof(err)), UC_OK);
    assert_int_equal(
        uc_cache_add_keyspaces(w->c, defs, NDEFS, err, sizeof(err)), UC_OK);
    if (near) {
        wait_healthy(w->c, 15000);
    }
    /* 40 entries of 8 insights */
    for (int i = 0; i < 40; i++) {
        snprintf(ins, sizeof(ins), "i%d", i % 8);
        snprintf(id, sizeof(id), "%d", i);
        read_t r;
        uint64_t until = uc_test_now_ms() + 5000;
        do {
            r = rd2(w->c, "cm", ins, id);
        } while ((r.rc != UC_OK || r.source != UC_FROM_CACHE) &&
                 uc_test_now_ms() < until);
        expect(r, UC_FROM_CACHE, 0);
    }
    /* Three tags of one entry on (most likely) three nodes. */
    for (int i = 0; i < 20; i++) {
        snprintf(ins, sizeof(ins), "x%d", i);
        expect(rd2(w->c, "two", ins, "y"), UC_FROM_LOADER, 0);
        read_t r = rd2(w->c, "two", ins, "y");
        if (r.source != UC_FROM_CACHE) {
            fail_msg("two %s: a second read is source %d", ins, r.source);
        }
    }
    int calls = atomic_load(&db.calls);
    write_tag(w->c, "insight:i3");
    for (int i = 0; i < 40; i++) {
        snprintf(ins, sizeof(ins), "i%d", i % 8);
        snprintf(id, sizeof(id), "%d", i);
        expect(rd2(w->c, "cm", ins, id),
               i % 8 == 3 ? UC_FROM_LOADER : UC_FROM_CACHE, i % 8 == 3 ? 1 : 0);
    }
    assert_int_equal(atomic_load(&db.calls), calls + 5);
    uc_cache_destroy(w->c);
    w->c = NULL;
}

static void test_cluster(void **state)
{
    cworld_t *w = *state;
    char why[200];

    if (!uc_test_cluster_available(why, sizeof(why))) {
        if (getenv("UC_TEST_ALLOW_SKIP") != NULL) {
            skip();
        }
        fail_msg("%s", why);
    }
    assert_int_equal(uc_test_cluster_start(&w->cl), 0);
    cluster_case(w, 0);
    cluster_case(w, 1);
}

#define EACH(fn)                                                               \
    cmocka_unit_test_setup_teardown(fn, setup_redis, teardown),                \
        cmocka_unit_test_setup_teardown(fn, setup_near, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declare),
        cmocka_unit_test_setup_teardown(test_invalidate, setup_memory,
                                        teardown),
        EACH(test_invalidate),
        cmocka_unit_test_setup_teardown(test_other_instance, setup_memory,
                                        teardown),
        EACH(test_other_instance),
        cmocka_unit_test_setup_teardown(test_deleted_version, setup_memory,
                                        teardown),
        EACH(test_deleted_version),
        cmocka_unit_test_setup_teardown(test_join_after_write, setup_memory,
                                        teardown),
        EACH(test_join_after_write),
        cmocka_unit_test_setup_teardown(test_pending_record, setup_memory,
                                        teardown),
        EACH(test_pending_record),
        cmocka_unit_test_setup_teardown(test_failed_invalidation, setup_redis,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restored_versions_dropped,
                                        setup_redis, teardown),
        cmocka_unit_test_setup_teardown(test_negative, setup_memory, teardown),
        EACH(test_negative),
        cmocka_unit_test_setup_teardown(test_stale, setup_memory, teardown),
        EACH(test_stale),
        cmocka_unit_test_setup_teardown(test_set, setup_memory, teardown),
        EACH(test_set),
        cmocka_unit_test_setup_teardown(test_old_format, setup_memory,
                                        teardown),
        EACH(test_old_format),
        EACH(test_read_cost),
        EACH(test_no_scan),
        cmocka_unit_test_setup_teardown(test_cluster, setup_cluster,
                                        teardown_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
