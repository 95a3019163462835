/* SPDX-License-Identifier: MIT */
/*
 * The library's coherence rules, forced deterministically on a real
 * redis-server (and on the memory store where the rule is the same):
 *
 *   - a fill that read the database before an invalidation never stores,
 *     even when Redis lost everything in between (the ABA interleaving that
 *     generation counters could not survive);
 *   - a fill in progress (another caller's lease) loads without storing;
 *   - values that are not this entry's (another key's, garbage, a key of
 *     another type, oversized) are deleted, never returned;
 *   - a failed invalidation stays pending: reads bypass the cache until the
 *     worker applied it;
 *   - the durable log: records pending at attach are bypassed from the first
 *     read; records another process appended evict a process-local store;
 *   - a Redis restarted from a snapshot is dropped before it is used.
 *
 * Interleavings are forced from inside the loader, which the library calls
 * without holding any lock. The log used here is a small in-memory one:
 * the service's SQLite and PostgreSQL logs are tested by test_db and,
 * end to end, by test_coherence.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_fixture.h"
#include "util.h"

#define WAIT_MS 5000

static const uc_keyspace_def_t defs[] = {
    {.name = "stats", .pattern = "stats:{id}", .ttl_s = 600},
    {.name = "series",
     .pattern = "series:{svc}:{page}",
     .ttl_s = 600,
     .max_value_bytes = 4096},
};

static uc_cache_t *open_redis(uc_test_fixture_t *f)
{
    uc_config_t cfg;
    char err[256];
    uc_cache_t *c;

    uc_test_redis_config(&cfg, f->r.port);
    cfg.command_timeout_ms = 300;
    cfg.breaker_threshold = 1000; /* these tests count calls, not outages */
    cfg.log_tail_ms = 20;
    cfg.trust_check_ms = 600000;
    /* These rules are the shared store's: the tests write Redis behind the
     * library's back and read at once, which a near cache would answer for
     * the invalidation lag (test_near_cache covers that tier). */
    cfg.near_off = 1;
    c = uc_test_open_cache(&cfg);
    assert_int_equal(uc_cache_add_keyspaces(c, defs, 2, err, sizeof(err)),
                     UC_OK);
    return c;
}

static uc_cache_t *open_memory(void)
{
    uc_config_t cfg;
    char err[256];
    uc_cache_t *c = NULL;

    uc_config_init(&cfg);
    /* Refills after writes would make the misses these tests expect hits. */
    cfg.refill_top = -1;

    cfg.backend = UC_BACKEND_MEMORY;
    cfg.log_tail_ms = 20;
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_int_equal(uc_cache_add_keyspaces(c, defs, 2, err, sizeof(err)),
                     UC_OK);
    return c;
}

static void cli_ok(uc_test_fixture_t *f, const char *cmd)
{
    char out[256];
    assert_int_equal(uc_test_redis_cli(&f->r, NULL, cmd, out, sizeof(out)), 0);
}

/* ---- loaders --------------------------------------------------------------
 */

typedef struct loader loader_t;
typedef void (*during_fn)(loader_t *l);

struct loader {
    const char *value;
    int calls;
    during_fn during; /* runs inside the load, once */
    uc_test_fixture_t *f;
    uc_keyspace_t *ks;
    const char *const *fields;
    /* what the nested call inside the load saw */
    int nested_rc;
    uc_source_t nested_source;
    char nested_value[64];
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n + 1);
    }
    return p;
}

static int load(void *arg, const char *const *fields, size_t nfields,
                char **val, size_t *len)
{
    loader_t *l = arg;
    (void)fields;
    (void)nfields;
    l->calls++;
    if (l->during != NULL) {
        during_fn d = l->during;
        l->during = NULL;
        d(l);
    }
    *val = dup_str(l->value);
    if (*val == NULL) {
        return UC_ENOMEM;
    }
    *len = strlen(l->value);
    return UC_OK;
}

static int read_through(uc_keyspace_t *ks, const char *const *fields, size_t n,
                        loader_t *l, uc_load_result_t *r)
{
    uc_load_opts_t opts = UC_LOAD_OPTS_INIT;
    opts.loader = load;
    opts.loader_arg = l;
    return uc_keyspace_get_or_load(ks, fields, n, &opts, r);
}

static void expect_read(uc_keyspace_t *ks, const char *const *fields, size_t n,
                        loader_t *l, uc_source_t source, const char *value)
{
    uc_load_result_t r;
    assert_int_equal(read_through(ks, fields, n, l, &r), UC_OK);
    assert_int_equal(r.source, source);
    assert_string_equal(r.data, value);
    uc_free(r.data);
}

static uc_stats_t ks_stats(uc_keyspace_t *ks)
{
    uc_stats_t s;
    uc_keyspace_stats(ks, &s);
    return s;
}

/* ---- 1. ABA: Redis loses everything while a load is in flight -------------
 */

/* Inside the slow load: Redis is flushed (a restart or eviction would do
 * the same to a counter), the row changes and is invalidated, and another
 * reader fills the entry with the new row. */
static void flush_write_refill(loader_t *l)
{
    loader_t fresh = {.value = "{\"v\":\"new\"}"};
    uc_load_result_t r;

    cli_ok(l->f, "FLUSHALL");
    assert_int_equal(uc_keyspace_invalidate(l->ks, l->fields, 1, NULL), UC_OK);
    l->nested_rc = read_through(l->ks, l->fields, 1, &fresh, &r);
    if (l->nested_rc == UC_OK) {
        l->nested_source = r.source;
        snprintf(l->nested_value, sizeof(l->nested_value), "%s", r.data);
        uc_free(r.data);
    }
}

static void aba_old_load_never_stores(void **state)
{
    uc_test_fixture_t *f = *state;
    const char *id[] = {"aba"};
    loader_t slow = {.value = "{\"v\":\"old\"}", .during = flush_write_refill};
    loader_t probe = {.value = "{\"v\":\"probe\"}"};
    uc_stats_t st;

    uc_test_fixture_start(f, NULL);
    uc_cache_t *c = open_redis(f);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "stats");
    slow.f = f;
    slow.ks = ks;
    slow.fields = id;

    /* The slow reader gets its (old) answer, but the cache keeps the new. */
    expect_read(ks, id, 1, &slow, UC_FROM_LOADER, "{\"v\":\"old\"}");
    assert_int_equal(slow.nested_rc, UC_OK);
    assert_string_equal(slow.nested_value, "{\"v\":\"new\"}");
    expect_read(ks, id, 1, &probe, UC_FROM_CACHE, "{\"v\":\"new\"}");
    assert_int_equal(probe.calls, 0);
    st = ks_stats(ks);
    assert_int_equal(st.stale_rejects, 1);
    uc_cache_destroy(c);
}

/* ---- 2. a fill in progress elsewhere ---------------------------------------
 */

static void nested_read(loader_t *l)
{
    loader_t other = {.value = "{\"v\":\"other\"}"};
    uc_load_result_t r;
    l->nested_rc = read_through(l->ks, l->fields, 1, &other, &r);
    if (l->nested_rc == UC_OK) {
        l->nested_source = r.source;
        snprintf(l->nested_value, sizeof(l->nested_value), "%s", r.data);
        uc_free(r.data);
    }
}

static void lease_held_loads_without_storing(uc_cache_t *c)
{
    const char *id[] = {"leased"};
    uc_keyspace_t *ks = uc_cache_keyspace(c, "stats");
    loader_t first = {.value = "{\"v\":1}", .during = nested_read};
    loader_t probe = {.value = "{\"v\":\"probe\"}"};
    uc_stats_t st;

    first.ks = ks;
    first.fields = id;
    expect_read(ks, id, 1, &first, UC_FROM_LOADER, "{\"v\":1}");
    /* The second reader met the first one's lease: loaded, did not store. */
    assert_int_equal(first.nested_rc, UC_OK);
    assert_int_equal(first.nested_source, UC_FROM_LOADER);
    assert_string_equal(first.nested_value, "{\"v\":\"other\"}");
    expect_read(ks, id, 1, &probe, UC_FROM_CACHE, "{\"v\":1}");
    st = ks_stats(ks);
    assert_int_equal(st.lease_conflicts, 1);
    assert_int_equal(st.sets, 1);
}

static void lease_conflict_redis(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_test_fixture_start(f, NULL);
    uc_cache_t *c = open_redis(f);
    lease_held_loads_without_storing(c);
    uc_cache_destroy(c);
}

static void lease_conflict_memory(void **state)
{
    uc_cache_t *c = open_memory();
    (void)state;
    lease_held_loads_without_storing(c);
    uc_cache_destroy(c);
}

/* ---- 3. values that are not this entry's -----------------------------------
 */

static void foreign_garbage_poison_and_oversized(void **state)
{
    uc_test_fixture_t *f = *state;
    const char *x[] = {"x"}, *y[] = {"y"};
    const char *big[] = {"svc", "1"};
    loader_t lx = {.value = "{\"id\":\"x\"}"}, ly = {.value = "{\"id\":\"y\"}"};
    loader_t lb = {.value = "[1]"};
    char *raw = NULL;
    size_t rlen = 0;
    uc_stats_t st;

    uc_test_fixture_start(f, NULL);
    uc_cache_t *c = open_redis(f);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "stats");
    uc_keyspace_t *series = uc_cache_keyspace(c, "series");
    expect_read(ks, x, 1, &lx, UC_FROM_LOADER, "{\"id\":\"x\"}");
    expect_read(ks, y, 1, &ly, UC_FROM_LOADER, "{\"id\":\"y\"}");

    /* y's stored bytes copied onto x's key: x is never answered with y. */
    assert_int_equal(uc_cache_get(c, "stats:y", 7, &raw, &rlen), UC_OK);
    assert_int_equal(uc_cache_set(c, "stats:x", 7, raw, rlen, 60000), UC_OK);
    uc_free(raw);
    expect_read(ks, x, 1, &lx, UC_FROM_LOADER, "{\"id\":\"x\"}");
    expect_read(ks, x, 1, &lx, UC_FROM_CACHE, "{\"id\":\"x\"}");

    /* Plain bytes with no envelope. */
    assert_int_equal(uc_cache_set(c, "stats:x", 7, "not json", 8, 60000),
                     UC_OK);
    expect_read(ks, x, 1, &lx, UC_FROM_LOADER, "{\"id\":\"x\"}");

    /* A key of another type: deleted, refilled, a hit again. */
    cli_ok(f, "DEL stats:x");
    cli_ok(f, "LPUSH stats:x a");
    expect_read(ks, x, 1, &lx, UC_FROM_LOADER, "{\"id\":\"x\"}");
    expect_read(ks, x, 1, &lx, UC_FROM_CACHE, "{\"id\":\"x\"}");

    /* Over the keyspace's 4 KiB cap: 8 MiB at the key is never fetched. */
    cli_ok(f, "SETRANGE series:svc:1 8388607 x");
    expect_read(series, big, 2, &lb, UC_FROM_LOADER, "[1]");
    expect_read(series, big, 2, &lb, UC_FROM_CACHE, "[1]");

    st = ks_stats(ks);
    assert_int_equal(st.corrupt, 3);
    st = ks_stats(series);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(st.too_big, 1);
    /* A value over the cap is neither stored nor read back. */
    char huge[5000];
    memset(huge, 'a', sizeof(huge));
    assert_int_equal(uc_keyspace_set(series, big, 2, huge, sizeof(huge)),
                     UC_ETOOBIG);
    uc_cache_destroy(c);
}

/* ---- 4. a failed invalidation stays pending ---------------------------------
 */

static void pending_invalidation_bypasses_until_applied(void **state)
{
    uc_test_fixture_t *f = *state;
    const char *id[] = {"paused"};
    loader_t l = {.value = "{\"v\":1}"};
    uc_stats_t st;
    uint64_t deadline;

    uc_test_fixture_start(f, NULL);
    uc_cache_t *c = open_redis(f);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "stats");
    expect_read(ks, id, 1, &l, UC_FROM_LOADER, "{\"v\":1}");
    expect_read(ks, id, 1, &l, UC_FROM_CACHE, "{\"v\":1}");

    /* Writes wait past the command timeout: the delete fails. */
    cli_ok(f, "CLIENT PAUSE 1500 WRITE");
    l.value = "{\"v\":2}";
    assert_true(uc_keyspace_invalidate(ks, id, 1, NULL) < 0);
    uc_cache_stats(c, &st);
    assert_int_equal(st.pending_invalidations, 1);
    assert_true(st.invalidation_failures >= 1);
    /* The old value is still in Redis, but nobody is served it. */
    expect_read(ks, id, 1, &l, UC_FROM_BYPASS, "{\"v\":2}");

    deadline = uc_test_now_ms() + WAIT_MS;
    do {
        uc_test_sleep_ms(20);
        uc_cache_stats(c, &st);
    } while (st.pending_invalidations > 0 && uc_test_now_ms() < deadline);
    assert_int_equal(st.pending_invalidations, 0);
    assert_true(st.invalidations_applied_late >= 1);
    expect_read(ks, id, 1, &l, UC_FROM_LOADER, "{\"v\":2}");
    expect_read(ks, id, 1, &l, UC_FROM_CACHE, "{\"v\":2}");
    uc_cache_destroy(c);
}

/* ---- 5. the durable log
 * ------------------------------------------------------ */

#define LOG_MAX 64

/* An in-memory invalidation log shared by the caches of one test. */
typedef struct {
    pthread_mutex_t mu;
    uc_inval_record_t recs[LOG_MAX];
    size_t n;
    int64_t next_id;
    int marks; /* mark_applied calls */
} memlog_t;

static void memlog_init(memlog_t *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->next_id = 1;
}

static int64_t memlog_append(memlog_t *m, const char *ks, const char *target)
{
    int64_t id;
    pthread_mutex_lock(&m->mu);
    uc_inval_record_t *r = &m->recs[m->n++];
    r->id = id = m->next_id++;
    snprintf(r->keyspace, sizeof(r->keyspace), "%s", ks);
    snprintf(r->target, sizeof(r->target), "%s", target);
    r->applied = 0;
    pthread_mutex_unlock(&m->mu);
    return id;
}

static int ml_after(void *arg, int64_t after, uc_inval_record_t *out,
                    size_t cap, size_t *n)
{
    memlog_t *m = arg;
    size_t k = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n && k < cap; i++) {
        if (m->recs[i].id > after) {
            out[k++] = m->recs[i];
        }
    }
    pthread_mutex_unlock(&m->mu);
    *n = k;
    return UC_OK;
}

static int ml_pending(void *arg, uc_inval_record_t *out, size_t cap, size_t *n)
{
    memlog_t *m = arg;
    size_t k = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n && k < cap; i++) {
        if (!m->recs[i].applied) {
            out[k++] = m->recs[i];
        }
    }
    pthread_mutex_unlock(&m->mu);
    *n = k;
    return UC_OK;
}

static int ml_mark(void *arg, const int64_t *ids, size_t n, uint64_t now_ms)
{
    memlog_t *m = arg;
    (void)now_ms;
    pthread_mutex_lock(&m->mu);
    m->marks++;
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

static int ml_prune(void *arg, uint64_t before_ms)
{
    (void)arg;
    (void)before_ms;
    return UC_OK;
}

static int ml_last(void *arg, int64_t *id)
{
    memlog_t *m = arg;
    pthread_mutex_lock(&m->mu);
    *id = m->next_id - 1;
    pthread_mutex_unlock(&m->mu);
    return UC_OK;
}

static const uc_invlog_ops_t memlog_ops = {ml_after, ml_pending, ml_mark,
                                           ml_prune, ml_last};

static int memlog_applied(memlog_t *m, int64_t id)
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

/* A record left pending by a process that died: the next process bypasses
 * the entry from its first read, then applies the record. */
static void log_pending_at_attach(void **state)
{
    uc_test_fixture_t *f = *state;
    const char *id[] = {"crashed"};
    loader_t l = {.value = "{\"v\":\"old\"}"};
    memlog_t log;
    char err[128];
    uint64_t deadline;

    uc_test_fixture_start(f, NULL);
    memlog_init(&log);
    uc_cache_t *first = open_redis(f);
    uc_keyspace_t *ks1 = uc_cache_keyspace(first, "stats");
    expect_read(ks1, id, 1, &l, UC_FROM_LOADER, "{\"v\":\"old\"}");
    /* The write commits with its record; the process dies before applying. */
    int64_t rec = memlog_append(&log, "stats", "stats:crashed");
    uc_cache_destroy(first);

    l.value = "{\"v\":\"new\"}";
    uc_cache_t *next = open_redis(f);
    uc_keyspace_t *ks = uc_cache_keyspace(next, "stats");
    /* Neither the attach nor the worker may apply the record before the
     * first read: deletes wait past the command timeout meanwhile. */
    cli_ok(f, "CLIENT PAUSE 1000 WRITE");
    assert_int_equal(
        uc_cache_attach_log(next, &memlog_ops, &log, err, sizeof(err)), UC_OK);
    expect_read(ks, id, 1, &l, UC_FROM_BYPASS, "{\"v\":\"new\"}");
    deadline = uc_test_now_ms() + WAIT_MS;
    while (!memlog_applied(&log, rec) && uc_test_now_ms() < deadline) {
        uc_test_sleep_ms(10);
    }
    assert_true(memlog_applied(&log, rec));
    expect_read(ks, id, 1, &l, UC_FROM_LOADER, "{\"v\":\"new\"}");
    uc_cache_destroy(next);
}

/* A writer applies its committed records and marks them in one call. */
static void log_apply_marks(void **state)
{
    uc_test_fixture_t *f = *state;
    const char *id[] = {"w"};
    loader_t l = {.value = "{\"v\":1}"};
    memlog_t log;
    char err[128];
    size_t applied = 0;

    uc_test_fixture_start(f, NULL);
    memlog_init(&log);
    uc_cache_t *c = open_redis(f);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "stats");
    assert_int_equal(
        uc_cache_attach_log(c, &memlog_ops, &log, err, sizeof(err)), UC_OK);
    expect_read(ks, id, 1, &l, UC_FROM_LOADER, "{\"v\":1}");
    uc_inval_record_t recs[2];
    memset(recs, 0, sizeof(recs));
    recs[0].id = memlog_append(&log, "stats", "stats:w");
    snprintf(recs[0].keyspace, sizeof(recs[0].keyspace), "stats");
    snprintf(recs[0].target, sizeof(recs[0].target), "stats:w");
    recs[1].id = memlog_append(&log, "series", "series:svc:*");
    snprintf(recs[1].keyspace, sizeof(recs[1].keyspace), "series");
    snprintf(recs[1].target, sizeof(recs[1].target), "series:svc:*");
    assert_int_equal(uc_cache_apply_invalidations(c, recs, 2, &applied), UC_OK);
    assert_int_equal(applied, 2);
    /* Deleted now; marked in the log by the worker, in one call. */
    uint64_t deadline = uc_test_now_ms() + WAIT_MS;
    while (!(memlog_applied(&log, recs[0].id) &&
             memlog_applied(&log, recs[1].id)) &&
           uc_test_now_ms() < deadline) {
        uc_test_sleep_ms(5);
    }
    assert_true(memlog_applied(&log, recs[0].id));
    assert_true(memlog_applied(&log, recs[1].id));
    l.value = "{\"v\":2}";
    expect_read(ks, id, 1, &l, UC_FROM_LOADER, "{\"v\":2}");
    uc_cache_destroy(c);
}

/* Two processes on the memory store: B learns of A's write from the log. */
static void memory_instances_follow_the_log(void **state)
{
    const char *id[] = {"shared"};
    loader_t la = {.value = "{\"v\":1}"}, lb = {.value = "{\"v\":1}"};
    memlog_t log;
    char err[128];
    uc_load_result_t r;
    uint64_t deadline;
    (void)state;

    memlog_init(&log);
    uc_cache_t *a = open_memory();
    uc_cache_t *b = open_memory();
    assert_int_equal(
        uc_cache_attach_log(a, &memlog_ops, &log, err, sizeof(err)), UC_OK);
    assert_int_equal(
        uc_cache_attach_log(b, &memlog_ops, &log, err, sizeof(err)), UC_OK);
    uc_keyspace_t *ka = uc_cache_keyspace(a, "stats");
    uc_keyspace_t *kb = uc_cache_keyspace(b, "stats");
    expect_read(ka, id, 1, &la, UC_FROM_LOADER, "{\"v\":1}");
    expect_read(kb, id, 1, &lb, UC_FROM_LOADER, "{\"v\":1}");
    expect_read(kb, id, 1, &lb, UC_FROM_CACHE, "{\"v\":1}");

    /* A writes: its record goes to the log, A applies it locally. */
    uc_inval_record_t rec;
    memset(&rec, 0, sizeof(rec));
    rec.id = memlog_append(&log, "stats", "stats:shared");
    snprintf(rec.keyspace, sizeof(rec.keyspace), "stats");
    snprintf(rec.target, sizeof(rec.target), "stats:shared");
    assert_int_equal(uc_cache_apply_invalidations(a, &rec, 1, NULL), UC_OK);
    la.value = lb.value = "{\"v\":2}";
    expect_read(ka, id, 1, &la, UC_FROM_LOADER, "{\"v\":2}");

    /* B's worker tails the log and evicts its copy within a few ticks. */
    deadline = uc_test_now_ms() + WAIT_MS;
    for (;;) {
        assert_int_equal(read_through(kb, id, 1, &lb, &r), UC_OK);
        int fresh = strcmp(r.data, "{\"v\":2}") == 0;
        uc_free(r.data);
        if (fresh || uc_test_now_ms() > deadline) {
            assert_true(fresh);
            break;
        }
        uc_test_sleep_ms(5);
    }
    uc_cache_destroy(a);
    uc_cache_destroy(b);
}

/* ---- 6. a Redis restored from a snapshot ------------------------------------
 */

static void restored_snapshot_is_dropped(void **state)
{
    uc_test_fixture_t *f = *state;
    const char *id[] = {"snap"};
    loader_t l = {.value = "{\"v\":\"old\"}"};
    char out[64];
    uc_stats_t st;

    uc_test_fixture_start(f, NULL);
    uc_cache_t *c = open_redis(f);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "stats");
    expect_read(ks, id, 1, &l, UC_FROM_LOADER, "{\"v\":\"old\"}");
    cli_ok(f, "SAVE");
    /* Invalidated after the snapshot... */
    assert_int_equal(uc_keyspace_invalidate(ks, id, 1, NULL), UC_OK);
    l.value = "{\"v\":\"new\"}";
    /* ...and the server comes back from that snapshot. */
    uc_test_redis_kill(&f->r);
    assert_int_equal(uc_test_redis_restart(&f->r), 0);
    assert_int_equal(
        uc_test_redis_cli(&f->r, NULL, "EXISTS stats:snap", out, sizeof(out)),
        0);
    assert_string_equal(out, "1");
    expect_read(ks, id, 1, &l, UC_FROM_LOADER, "{\"v\":\"new\"}");
    expect_read(ks, id, 1, &l, UC_FROM_CACHE, "{\"v\":\"new\"}");
    uc_cache_stats(c, &st);
    assert_true(st.dataset_flushes >= 2); /* the first start, and this one */
    uc_cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn)                                                                  \
    cmocka_unit_test_setup_teardown(fn, uc_test_fixture_setup,                 \
                                    uc_test_fixture_teardown)
        T(aba_old_load_never_stores),
        T(lease_conflict_redis),
        cmocka_unit_test(lease_conflict_memory),
        T(foreign_garbage_poison_and_oversized),
        T(pending_invalidation_bypasses_until_applied),
        T(log_pending_at_attach),
        T(log_apply_marks),
        cmocka_unit_test(memory_instances_follow_the_log),
        T(restored_snapshot_is_dropped),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
