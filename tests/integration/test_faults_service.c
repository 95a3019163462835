/* SPDX-License-Identifier: MIT */
/*
 * Service-level fault tests: the real utxoiq-api under a bounded read/write
 * load (tests/faults/fault_load.h) while its dependencies fail, with a real
 * redis-server and a real PostgreSQL of the test's own. Each test states
 * what "nothing lost" means for its fault and asserts it:
 *
 *  - Redis killed and restarted empty: every read and write answered 200 (the
 *    database answers while Redis is gone), and no read is older than the
 *    last write acknowledged before it started, before, during and after.
 *  - Redis hung (SIGSTOP): the same, every read within a bound derived from
 *    the configured Redis timeouts, with the breaker and without; after
 *    SIGCONT the cache answers again (X-Cache: HIT).
 *  - PostgreSQL hung and PostgreSQL down: cached entries still served 200,
 *    misses and writes a 503 with a JSON detail naming the database within
 *    the database timeout, and the same process recovers when it returns.
 *  - PostgreSQL down past the entries' TTL: every cached insight still
 *    200 with X-Cache: STALE, an Age and the body that was cached; one
 *    never cached 503; a write 503 and not shown; when the database is
 *    back, fresh answers (MISS, then HIT) and writes invalidate again.
 *  - Both down: /healthz 200, /readyz 503 naming both, requests 503 in
 *    bounded time; then both back and the service answers 200 again.
 *  - A randomized concurrent read/write run on the memory backend and on
 *    Redis, checked read by read against the acknowledged writes.
 *
 * The same file builds twice: as test_faults_service (short runs, `make
 * test`) and, with UC_FAULTS_LONG, as faults_service (longer runs and more
 * threads, `make faults`). Both print their figures as "FIGURE name value"
 * lines, which docs/reliability.md records. Durations are only bounds on
 * the load; the assertions on time are upper bounds derived from the
 * configured timeouts plus generous slack, never speed targets.
 */
#include "api_test.h"

#include <signal.h>
#include <stdlib.h>

#include "../faults/fault_load.h"
#include "pg_server.h"
#include "redis_server.h"
#include "util.h"

#ifndef UC_FAULTS_LONG
#define UC_FAULTS_LONG 0
#endif

/* Configured on the service under test. */
/* The near cache's loss detection bound with the default channel
 * settings: heartbeat interval (100 ms) + its deadline (250 ms). */
#define NEAR_LOSS_MS 350
#define REDIS_CONNECT_MS 150
#define REDIS_COMMAND_MS 150
#define REDIS_ACQUIRE_MS 100 /* the library's default */
#define DB_TIMEOUT_MS 400
/* The PostgreSQL backend waits this long past its statement timeout. */
#define DB_GRACE_MS 1000
/* A loaded 2-core machine under sanitizers. */
#define SLACK_MS 2500
/* One request may wait on Redis a few times (GET, SET, a reconnect). */
#define REDIS_BOUND_MS                                                         \
    (3 * (REDIS_CONNECT_MS + REDIS_COMMAND_MS + REDIS_ACQUIRE_MS) + SLACK_MS)
#define DB_BOUND_MS (2 * (DB_TIMEOUT_MS + DB_GRACE_MS) + SLACK_MS)

#if UC_FAULTS_LONG
#define LOAD_MS 12000
#define READERS 4
#define WRITE_KEYS 160
#define HANG_MS 4000
#define RW_WRITERS 4
#define RW_READERS 4
#define RW_KEYS_PER_WRITER 60
#define RW_MS 15000
#else
#define LOAD_MS 2400
#define READERS 3
#define WRITE_KEYS 30
#define HANG_MS 1200
#define RW_WRITERS 3
#define RW_READERS 3
#define RW_KEYS_PER_WRITER 8
#define RW_MS 3000
#endif
#define MAX_OPS 100000

#define FIGURE(name, fmtstr, ...)                                              \
    do {                                                                       \
        printf("FIGURE %s " fmtstr "\n", name, __VA_ARGS__);                   \
        fflush(stdout);                                                        \
    } while (0)

/* Keys of fresh users ("tag-<n>"), one per write of a load. */
typedef struct {
    char (*buf)[128];
    const char **ptr;
    size_t n;
} keys_t;

static void keys_make(uc_test_api_t *a, keys_t *k, const char *tag, size_t n)
{
    char user[64];
    k->buf = calloc(n + 1, sizeof(*k->buf));
    k->ptr = calloc(n + 1, sizeof(*k->ptr));
    assert_non_null(k->buf);
    assert_non_null(k->ptr);
    for (size_t i = 0; i < n; i++) {
        uniq(user, sizeof(user), tag);
        assert_int_equal(
            uc_test_api_key(a, user, "user", k->buf[i], sizeof(k->buf[i])), 0);
        k->ptr[i] = k->buf[i];
    }
    k->n = n;
}

static void keys_free(keys_t *k)
{
    free(k->buf);
    free(k->ptr);
    memset(k, 0, sizeof(*k));
}

static void start_api(uc_test_api_t *a, const char *db_url,
                      const uc_test_redis_t *r, const char *const *extra)
{
    static char url[64];
    char to[3][64];
    const char *env[12];
    size_t n = 0;
    fmt(to[0], sizeof(to[0]), "REDIS_COMMAND_TIMEOUT_MS=%d", REDIS_COMMAND_MS);
    fmt(to[1], sizeof(to[1]), "REDIS_CONNECT_TIMEOUT_MS=%d", REDIS_CONNECT_MS);
    fmt(to[2], sizeof(to[2]), "UTXOIQ_DB_TIMEOUT_MS=%d", DB_TIMEOUT_MS);
    if (r != NULL) {
        fmt(url, sizeof(url), "REDIS_URL=redis://127.0.0.1:%d/0", r->port);
        env[n++] = url;
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 6; i++) {
        env[n++] = extra[i];
    }
    env[n++] = to[0];
    env[n++] = to[1];
    env[n++] = to[2];
    env[n++] = "UTXOIQ_ACCESS_LOG=0";
    env[n] = NULL;
    assert_int_equal(uc_test_api_start(a, db_url, env), 0);
}

/* GET of the stats of insight; *ms gets the time it took. */
static void get_stats(uc_test_api_t *a, api_res_t *r, const char *insight,
                      double *ms)
{
    char path[256];
    uint64_t t = uc_test_now_us();
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", insight);
    api_req(a, r, "GET", path, NULL, NULL, NULL);
    if (ms != NULL) {
        *ms = (double)(uc_test_now_us() - t) / 1000.0;
    }
}

static long rate(uc_test_api_t *a, const char *key, const char *insight,
                 int rating, double *ms)
{
    char body[256];
    api_res_t r;
    uint64_t t = uc_test_now_us();
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":%d}", insight,
        rating);
    api_req(a, &r, "POST", "/api/v1/feedback/rate", key, body, NULL);
    if (ms != NULL) {
        *ms = (double)(uc_test_now_us() - t) / 1000.0;
    }
    long st = r.h.status;
    if (st != 200 && st != 503) {
        fprintf(stderr, "rate: %ld %s\n", st, r.h.body);
    }
    api_free(&r);
    return st;
}

/* The checker found nothing lost: every request answered 200, no stale and
 * no impossible read. */
static void assert_nothing_lost(const char *name, const uc_fault_check_t *c)
{
    FIGURE(name,
           "reads=%zu reads_200=%zu writes=%zu writes_200=%zu "
           "5xx=%zu no_answer=%zu stale_reads=%zu impossible=%zu "
           "max_staleness_ms=%.1f max_lag_ms=%.1f hits=%zu",
           c->reads, c->reads_ok, c->writes, c->writes_ok, c->status_5xx,
           c->no_answer, c->stale_reads, c->impossible_reads,
           c->max_staleness_ms, c->max_lag_ms, c->hits);
    assert_true(c->reads > 0);
    assert_int_equal(c->no_answer, 0);
    assert_int_equal(c->status_5xx, 0);
    assert_int_equal(c->reads_ok, c->reads);
    assert_int_equal(c->writes_ok, c->writes);
    assert_int_equal(c->stale_reads, 0);
    assert_int_equal(c->impossible_reads, 0);
}

/* After the load: the value read now counts every acknowledged write, and
 * the cache serves it (HIT) within a bounded wait. Returns the ms from
 * `since_us` (load clock) to the first HIT, measured on the load clock. */
static double wait_hit_with(uc_test_api_t *a, const uc_fault_load_t *l,
                            const char *insight, size_t writes_ok,
                            uint64_t since_us)
{
    size_t n;
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == UC_FAULT_READ && ops[i].hit &&
            ops[i].start_us >= since_us && ops[i].start_us < first) {
            first = ops[i].start_us;
        }
    }
    uint64_t deadline = uc_test_now_ms() + 10000;
    int hit = 0;
    while (!hit && uc_test_now_ms() < deadline) {
        api_res_t r;
        get_stats(a, &r, insight, NULL);
        assert_status(&r, 200);
        assert_int_equal(jint(r.j, "total_ratings"), (long long)writes_ok);
        hit = strcmp(r.h.x_cache, "HIT") == 0;
        if (hit && first == UINT64_MAX) {
            first = uc_fault_now(l);
        }
        api_free(&r);
        if (!hit) {
            uc_test_sleep_ms(20);
        }
    }
    assert_true(hit);
    return (double)(first - since_us) / 1000.0;
}

/* Reads that started in [from, to): how many, how many answered 200, how
 * many were cache hits, and how many took at least slow_ms. */
typedef struct {
    size_t started, ok, hits, slow;
} window_t;

static window_t window_reads(const uc_fault_load_t *l, uint64_t from,
                             uint64_t to, unsigned slow_ms)
{
    size_t n;
    window_t w = {0, 0, 0, 0};
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == UC_FAULT_READ && ops[i].start_us >= from &&
            ops[i].start_us < to) {
            w.started++;
            w.ok += ops[i].status == 200;
            w.hits += ops[i].hit != 0;
            w.slow += ops[i].end_us - ops[i].start_us >= slow_ms * 1000u;
        }
    }
    return w;
}

/* The slowest read, in ms, of those in flight at any time in [from, to):
 * started before `to` and ended after `from`. Unlike the window above it
 * includes the reads already waiting on Redis when the fault began, which
 * only the service's own timeouts bound (the client waits far longer). */
static double overlap_max_ms(const uc_fault_load_t *l, uint64_t from,
                             uint64_t to)
{
    size_t n;
    uint64_t worst = 0;
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == UC_FAULT_READ && ops[i].start_us < to &&
            ops[i].end_us > from && ops[i].end_us - ops[i].start_us > worst) {
            worst = ops[i].end_us - ops[i].start_us;
        }
    }
    return (double)worst / 1000.0;
}

/* The service's own count of what a Redis fault does to it. */
typedef struct {
    long long errors, fallbacks, breaker_opens;
} felt_t;

static felt_t felt(uc_test_api_t *a)
{
    api_res_t r;
    felt_t f;
    api_req(a, &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL, NULL);
    assert_status(&r, 200);
    f.errors = jint(jget(r.j, "totals"), "errors");
    f.fallbacks = jint(jget(r.j, "totals"), "fallbacks");
    f.breaker_opens = jint(jget(r.j, "pool"), "breaker_opens");
    api_free(&r);
    return f;
}

/* UC_FAULTS_SEED repeats a run's interleaving pauses; otherwise the time
 * picks them. Printed so that a failure can be replayed. */
static unsigned seed(void)
{
    const char *e = getenv("UC_FAULTS_SEED");
    unsigned v = (unsigned)uc_test_now_us();
    if (e != NULL && e[0] != '\0') {
        v = (unsigned)strtoul(e, NULL, 10);
    }
    FIGURE("seed", "UC_FAULTS_SEED=%u", v);
    return v;
}

static uc_fault_load_t *load_start(uc_test_api_t *a, const char *insight,
                                   const keys_t *k, int writers, int readers,
                                   unsigned ms, unsigned write_gap_ms)
{
    uc_fault_load_t *l = NULL;
    uc_fault_opts_t o = {
        .port = a->port,
        .insight = insight,
        .readers = readers,
        .writers = writers,
        .keys = k->ptr,
        .nkeys = k->n,
        .duration_ms = ms,
        .max_ops = MAX_OPS,
        .read_gap_ms = 1,
        .write_gap_ms = write_gap_ms,
        .seed = seed(),
    };
    assert_int_equal(uc_fault_start(&l, &o), 0);
    return l;
}

/* Sleeps until the load clock reads at least at_ms. */
static void until(const uc_fault_load_t *l, unsigned at_ms)
{
    while (uc_fault_now(l) < (uint64_t)at_ms * 1000u) {
        uc_test_sleep_ms(5);
    }
}

static void test_redis_killed_under_load(void **state)
{
    uc_test_redis_t redis;
    uc_test_api_t api;
    keys_t k;
    uc_fault_check_t c;
    char id[64];
    (void)state;
    memset(&api, 0, sizeof(api));
    assert_int_equal(uc_test_redis_start(&redis, NULL), 0);
    start_api(&api, NULL, &redis, NULL);
    keys_make(&api, &k, "kill", WRITE_KEYS);
    uniq(id, sizeof(id), "fault-kill");

    unsigned gap = LOAD_MS / WRITE_KEYS;
    uc_fault_load_t *l = load_start(&api, id, &k, 1, READERS, LOAD_MS, gap);
    until(l, LOAD_MS / 4);
    uint64_t t_kill = uc_fault_now(l);
    uc_test_redis_kill(&redis);
    /* Reaped: no read that starts from here on can be a hit from Redis,
     * and none from the near cache once its channel's loss is seen (EOF,
     * or at worst a missed heartbeat: heartbeat + deadline). */
    uint64_t t_dead = uc_fault_now(l) + (uint64_t)NEAR_LOSS_MS * 1000u;
    until(l, LOAD_MS / 2);
    uint64_t t_restart = uc_fault_now(l);
    assert_int_equal(uc_test_redis_restart(&redis), 0);
    uint64_t t_up = uc_fault_now(l);
    uc_fault_wait(l);

    uc_fault_check(l, &c);
    assert_nothing_lost("redis_kill", &c);
    size_t started, ok;
    window_t w = window_reads(l, t_kill, t_restart, REDIS_COMMAND_MS);
    started = w.started;
    ok = w.ok;
    double p99 = uc_fault_read_pct_ms(l, 99, t_kill, t_restart, NULL);
    double rec = wait_hit_with(&api, l, id, c.writes_ok, t_up);
    FIGURE("redis_kill",
           "down_ms=%.0f reads_during_kill=%zu "
           "answered_200=%zu p99_during_kill_ms=%.1f "
           "recovery_to_hit_ms=%.1f",
           (double)(t_restart - t_kill) / 1000.0, started, ok, p99, rec);
    assert_true(started > 0);
    assert_int_equal(ok, started);
    /* The fault was felt, not only survived: the cache served before the
     * kill, served nothing while Redis was gone, and the service counted
     * the failed cache calls. */
    felt_t f = felt(&api);
    FIGURE("redis_kill",
           "hits_before_kill=%zu hits_while_down=%zu "
           "cache_errors=%lld fallbacks=%lld",
           window_reads(l, 0, t_kill, REDIS_COMMAND_MS).hits,
           window_reads(l, t_dead, t_restart, REDIS_COMMAND_MS).hits, f.errors,
           f.fallbacks);
    assert_true(window_reads(l, 0, t_kill, REDIS_COMMAND_MS).hits > 0);
    assert_true(window_reads(l, t_dead, t_restart, REDIS_COMMAND_MS).started >
                0);
    assert_int_equal(window_reads(l, t_dead, t_restart, REDIS_COMMAND_MS).hits,
                     0);
    assert_true(f.errors > 0);

    uc_fault_free(l);
    keys_free(&k);
    assert_int_equal(uc_test_api_stop(&api), 0);
    uc_test_api_destroy(&api);
    uc_test_redis_stop(&redis);
}

/* What a hang run expects of the breaker: to open, to stay closed (a
 * threshold that never trips), or either (the mixed run). */
enum { BREAKER_ANY, BREAKER_OPENS, BREAKER_NEVER };

/* One hang of Redis under load; extra: environment for the service (the
 * breaker and backoff settings), NULL for the defaults. Prints and returns
 * the p99 during the hang. */
static double hang_run(const char *label, int writers, int breaker,
                       const char *const *extra)
{
    uc_test_redis_t redis;
    uc_test_api_t api;
    keys_t k;
    uc_fault_check_t c;
    char id[64];
    memset(&api, 0, sizeof(api));
    assert_int_equal(uc_test_redis_start(&redis, NULL), 0);
    start_api(&api, NULL, &redis, extra);
    keys_make(&api, &k, "hang", writers > 0 ? WRITE_KEYS : 0);
    uniq(id, sizeof(id), "fault-hang");

    unsigned total = HANG_MS * 2 + 1200;
    uc_fault_load_t *l =
        load_start(&api, id, &k, writers, READERS, total, total / WRITE_KEYS);
    until(l, 600);
    uint64_t t_stop = uc_fault_now(l);
    assert_int_equal(uc_test_redis_signal(&redis, SIGSTOP), 0);
    until(l, 600 + HANG_MS);
    uint64_t t_cont = uc_fault_now(l);
    assert_int_equal(uc_test_redis_signal(&redis, SIGCONT), 0);
    uc_fault_wait(l);

    uc_fault_check(l, &c);
    assert_nothing_lost(label, &c);
    size_t n_hang;
    double p50 = uc_fault_read_pct_ms(l, 50, t_stop, t_cont, &n_hang);
    double p99 = uc_fault_read_pct_ms(l, 99, t_stop, t_cont, NULL);
    double max = uc_fault_read_pct_ms(l, 100, t_stop, t_cont, NULL);
    double p99_before = uc_fault_read_pct_ms(l, 99, 0, t_stop, NULL);
    double rec = wait_hit_with(&api, l, id, c.writes_ok, t_cont);
    window_t w = window_reads(l, t_stop, t_cont, REDIS_COMMAND_MS);
    FIGURE(label,
           "hang_ms=%d reads_during_hang=%zu hits=%zu slow=%zu p50_ms=%.1f "
           "p99_ms=%.1f max_ms=%.1f p99_before_ms=%.1f "
           "recovery_to_hit_ms=%.1f bound_ms=%d",
           HANG_MS, n_hang, w.hits, w.slow, p50, p99, max, p99_before, rec,
           REDIS_BOUND_MS);
    double in_flight = overlap_max_ms(l, t_stop, t_cont);
    felt_t f = felt(&api);
    FIGURE(label, "max_in_flight_ms=%.1f cache_errors=%lld breaker_opens=%lld",
           in_flight, f.errors, f.breaker_opens);
    assert_true(n_hang > 0);
    /* Every read of the hang, not only the 99th percentile, stays within
     * the bound the Redis timeouts give; so does every read that was
     * already waiting on Redis when it stopped. */
    assert_true(max <= (double)REDIS_BOUND_MS);
    assert_true(in_flight <= (double)REDIS_BOUND_MS);
    /* The hang was felt: some read waited out a Redis timeout, the service
     * counted the failed calls, and the breaker did what this run set it
     * up to do. */
    assert_true(w.slow > 0);
    assert_true(f.errors > 0);
    if (breaker == BREAKER_OPENS) {
        assert_true(f.breaker_opens > 0);
    } else if (breaker == BREAKER_NEVER) {
        assert_int_equal(f.breaker_opens, 0);
    }

    uc_fault_free(l);
    keys_free(&k);
    assert_int_equal(uc_test_api_stop(&api), 0);
    uc_test_api_destroy(&api);
    uc_test_redis_stop(&redis);
    return p99;
}

/*
 * Three hangs. Under mixed load a write made during the hang cannot
 * invalidate, so the service queues the invalidation and sends reads of that
 * entry straight to the database until the retry succeeds: that run shows
 * the service's own shield. The read-only runs show the library alone: the
 * breaker (default settings) against a threshold that never trips.
 */
static void test_redis_hung_under_load(void **state)
{
    static const char *const no_breaker[] = {
        "UTXOCACHE_BREAKER_THRESHOLD=1000000", NULL};
    (void)state;
    hang_run("redis_hang_mixed", 1, BREAKER_ANY, NULL);
    double with = hang_run("redis_hang_reads_breaker", 0, BREAKER_OPENS, NULL);
    double without =
        hang_run("redis_hang_reads_no_breaker", 0, BREAKER_NEVER, no_breaker);
    FIGURE("redis_hang",
           "reads_only_p99_with_breaker_ms=%.1f "
           "p99_without_ms=%.1f",
           with, without);
#if UC_FAULTS_LONG
    /* The pool's reconnect backoff at its minimum as well: every read pays
     * for the hang, the worst case the bound must still hold for. */
    static const char *const unprotected[] = {
        "UTXOCACHE_BREAKER_THRESHOLD=1000000", "UTXOCACHE_BACKOFF_BASE_MS=1",
        "UTXOCACHE_BACKOFF_MAX_MS=1", NULL};
    double bare = hang_run("redis_hang_reads_no_breaker_no_backoff", 0,
                           BREAKER_NEVER, unprotected);
    FIGURE("redis_hang", "reads_only_p99_no_breaker_no_backoff_ms=%.1f", bare);
#endif
}

/* A cached insight, a 503 miss and a 503 write while the database is away;
 * returns the slowest of the failing requests in ms. */
static double db_away_checks(uc_test_api_t *api, const char *cached,
                             const char *key, const char *label)
{
    api_res_t r;
    char miss[64];
    double hit_ms, miss_ms, write_ms;

    get_stats(api, &r, cached, &hit_ms);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "HIT");
    assert_int_equal(jint(r.j, "total_ratings"), 1);
    api_free(&r);

    uniq(miss, sizeof(miss), "fault-miss");
    get_stats(api, &r, miss, &miss_ms);
    assert_status(&r, 503);
    assert_non_null(r.j);
    assert_detail_names(&r, "database");
    api_free(&r);

    assert_int_equal(rate(api, key, cached, 2, &write_ms), 503);
    FIGURE(label,
           "hit_ms=%.1f miss_503_ms=%.1f write_503_ms=%.1f "
           "bound_ms=%d",
           hit_ms, miss_ms, write_ms, DB_BOUND_MS);
    assert_true(miss_ms <= (double)DB_BOUND_MS);
    assert_true(write_ms <= (double)DB_BOUND_MS);
    return miss_ms > write_ms ? miss_ms : write_ms;
}

/* The first requests after the database returns: a new miss and a write
 * answer 200 at once, on the same process. */
static void db_back_checks(uc_test_api_t *api, const char *key,
                           const char *insight)
{
    api_res_t r;
    char fresh[64];
    uniq(fresh, sizeof(fresh), "fault-back");
    get_stats(api, &r, fresh, NULL);
    assert_status(&r, 200);
    api_free(&r);
    assert_int_equal(rate(api, key, insight, 4, NULL), 200);
    get_stats(api, &r, insight, NULL);
    assert_status(&r, 200);
    assert_true(jnum(r.j, "average_rating") == 4.0);
    api_free(&r);
}

static void test_db_hung_and_down(void **state)
{
    uc_test_pg_t pg;
    uc_test_api_t api;
    api_res_t r;
    char key[128], id[64];
    (void)state;
    if (!uc_test_pg_available()) {
        skip();
    }
    memset(&api, 0, sizeof(api));
    assert_int_equal(uc_test_pg_start(&pg), 0);
    start_api(&api, pg.url, NULL, NULL);
    assert_int_equal(uc_test_api_key(&api, "pgfault", "user", key, sizeof(key)),
                     0);
    uniq(id, sizeof(id), "fault-db");
    assert_int_equal(rate(&api, key, id, 3, NULL), 200);
    get_stats(&api, &r, id, NULL);
    api_free(&r);

    /* Hung: every process of the server frozen, connections open. */
    assert_true(uc_test_pg_signal(&pg, SIGSTOP) > 0);
    db_away_checks(&api, id, key, "db_hung");
    api_req(&api, &r, "GET", "/readyz", NULL, NULL, NULL);
    assert_status(&r, 503);
    assert_string_not_equal(jstr(jget(r.j, "database"), "status"), "ok");
    api_free(&r);
    assert_true(uc_test_pg_signal(&pg, SIGCONT) > 0);
    db_back_checks(&api, key, id);

    /* The write that answered 503 while the server was frozen had its
     * statement in the server's socket already, so it may commit when the
     * server resumes; its invalidation record then reaches this service
     * through the log's tail (every 200 ms, longer past a gap). Let the
     * tail apply it first: applied after the entry is cached again below,
     * it would drop the entry the down phase expects to find. */
    uc_test_sleep_ms(1000);

    /* Down: the postmaster gone, every pooled connection dropped. */
    get_stats(&api, &r, id, NULL); /* cache it again after the write */
    api_free(&r);
    assert_int_equal(uc_test_pg_down(&pg), 0);
    api_req(&api, &r, "GET", "/readyz", NULL, NULL, NULL);
    assert_status(&r, 503);
    assert_string_not_equal(jstr(jget(r.j, "database"), "status"), "ok");
    api_free(&r);
    /* The cached entry now holds one rating of 4 by this user. */
    get_stats(&api, &r, id, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "HIT");
    assert_true(jnum(r.j, "average_rating") == 4.0);
    api_free(&r);
    double miss_ms;
    uniq(id, sizeof(id), "fault-down-miss");
    get_stats(&api, &r, id, &miss_ms);
    assert_status(&r, 503);
    assert_detail_names(&r, "database");
    FIGURE("db_down", "miss_503_ms=%.1f", miss_ms);
    assert_true(miss_ms <= (double)DB_BOUND_MS);
    api_free(&r);
    assert_int_equal(rate(&api, key, id, 2, NULL), 503);

    uint64_t t_up = uc_test_now_ms();
    assert_int_equal(uc_test_pg_up(&pg), 0);
    FIGURE("db_down", "pg_up_ms=%.0f", (double)(uc_test_now_ms() - t_up));
    db_back_checks(&api, key, id);
    api_req(&api, &r, "GET", "/readyz", NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);

    assert_int_equal(uc_test_api_stop(&api), 0);
    uc_test_api_destroy(&api);
    uc_test_pg_stop(&pg);
}

static void test_redis_and_db_down(void **state)
{
    uc_test_pg_t pg;
    uc_test_redis_t redis;
    uc_test_api_t api;
    api_res_t r;
    char key[128], id[64];
    double ms;
    (void)state;
    if (!uc_test_pg_available()) {
        skip();
    }
    memset(&api, 0, sizeof(api));
    assert_int_equal(uc_test_pg_start(&pg), 0);
    assert_int_equal(uc_test_redis_start(&redis, NULL), 0);
    start_api(&api, pg.url, &redis, NULL);
    assert_int_equal(uc_test_api_key(&api, "both", "user", key, sizeof(key)),
                     0);
    uniq(id, sizeof(id), "fault-both");
    assert_int_equal(rate(&api, key, id, 5, NULL), 200);

    uc_test_redis_kill(&redis);
    assert_int_equal(uc_test_pg_down(&pg), 0);

    uint64_t t = uc_test_now_us();
    api_req(&api, &r, "GET", "/healthz", NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);
    api_req(&api, &r, "GET", "/readyz", NULL, NULL, NULL);
    ms = (double)(uc_test_now_us() - t) / 1000.0;
    assert_status(&r, 503);
    assert_string_equal(jstr(r.j, "status"), "not ready");
    assert_string_not_equal(jstr(jget(r.j, "database"), "status"), "ok");
    assert_string_not_equal(jstr(jget(r.j, "cache"), "status"), "ok");
    fprintf(stderr, "readyz: %s\n", r.h.body);
    api_free(&r);
    FIGURE("both_down", "healthz_readyz_ms=%.1f", ms);
    assert_true(ms <= (double)(DB_BOUND_MS + REDIS_BOUND_MS));

    double worst = 0;
    for (int i = 0; i < 5; i++) {
        get_stats(&api, &r, id, &ms);
        assert_status(&r, 503);
        assert_detail_names(&r, "database");
        api_free(&r);
        worst = ms > worst ? ms : worst;
        uint64_t w0 = uc_test_now_us();
        assert_int_equal(rate(&api, key, id, 1, NULL), 503);
        ms = (double)(uc_test_now_us() - w0) / 1000.0;
        worst = ms > worst ? ms : worst;
    }
    FIGURE("both_down", "worst_503_ms=%.1f bound_ms=%d", worst,
           DB_BOUND_MS + REDIS_BOUND_MS);
    assert_true(worst <= (double)(DB_BOUND_MS + REDIS_BOUND_MS));

    /* Both back: the same process answers again, with the committed value
     * and not one of the refused writes. */
    assert_int_equal(uc_test_redis_restart(&redis), 0);
    assert_int_equal(uc_test_pg_up(&pg), 0);
    get_stats(&api, &r, id, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "total_ratings"), 1);
    assert_true(jnum(r.j, "average_rating") == 5.0);
    api_free(&r);
    api_req(&api, &r, "GET", "/readyz", NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);

    assert_int_equal(uc_test_api_stop(&api), 0);
    uc_test_api_destroy(&api);
    uc_test_redis_stop(&redis);
    uc_test_pg_stop(&pg);
}

/* ---- serve-stale while the database is down ---------------------------- */

/* The TTL the stale run gives feedback_stats (UTXOCACHE_TTL_FEEDBACK_STATS),
 * the library's default fill jitter (+- 10 % of the TTL) and a margin for
 * the clocks of the test and the service: past TTL_S * (100 + JITTER) % +
 * MARGIN after its fill, no entry is fresh any more. */
#define STALE_TTL_S 1
#define STALE_JITTER_PCT 10
#define STALE_MARGIN_MS 500
#define STALE_EXPIRED_MS                                                       \
    (STALE_TTL_S * 1000 * (100 + STALE_JITTER_PCT) / 100 + STALE_MARGIN_MS)
#define STALE_N 20

/* The servers of the stale run, in the cmocka state so that the teardown
 * stops them when an assertion ended the test half-way. */
typedef struct {
    uc_test_pg_t pg;
    uc_test_redis_t redis;
    uc_test_api_t api;
    int pg_started, redis_started;
    char *body[STALE_N]; /* what each insight's cached entry holds */
} stale_world_t;

static int stale_setup(void **state)
{
    stale_world_t *w = calloc(1, sizeof(*w));
    *state = w;
    return w != NULL ? 0 : -1;
}

static int stale_teardown(void **state)
{
    stale_world_t *w = *state;
    uc_test_api_destroy(&w->api);
    if (w->redis_started) {
        uc_test_redis_stop(&w->redis);
    }
    if (w->pg_started) {
        uc_test_pg_stop(&w->pg);
    }
    for (int i = 0; i < STALE_N; i++) {
        free(w->body[i]);
    }
    free(w);
    return 0;
}

/* Whether the service says its near cache is on. */
static int near_enabled(uc_test_api_t *a)
{
    api_res_t r;
    api_req(a, &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL, NULL);
    assert_status(&r, 200);
    int on = json_is_true(jget(jget(r.j, "near"), "enabled"));
    api_free(&r);
    return on;
}

/* What the reads of one phase of the stale run saw. */
typedef struct {
    size_t reads, status_200, status_5xx, stale, hit, miss, same_body;
    size_t tier_near, tier_redis, aged; /* aged: an Age of 1 s or more */
    long age_min, age_max;
    double max_ms;
} stale_tally_t;

static void stale_count(stale_tally_t *t, const api_res_t *r, const char *want,
                        double ms)
{
    long age = -1;
    if (r->h.age[0] != '\0') {
        age = strtol(r->h.age, NULL, 10);
    }
    t->reads++;
    t->status_200 += r->h.status == 200;
    t->status_5xx += r->h.status >= 500;
    t->stale += strcmp(r->h.x_cache, "STALE") == 0;
    t->hit += strcmp(r->h.x_cache, "HIT") == 0;
    t->miss += strcmp(r->h.x_cache, "MISS") == 0;
    t->same_body += want != NULL && strcmp(r->h.body, want) == 0;
    t->tier_near += strcmp(r->h.x_cache_tier, "near") == 0;
    t->tier_redis += strcmp(r->h.x_cache_tier, "redis") == 0;
    t->aged += age >= 1;
    if (age >= 0 && (t->age_min < 0 || age < t->age_min)) {
        t->age_min = age;
    }
    t->age_max = age > t->age_max ? age : t->age_max;
    t->max_ms = ms > t->max_ms ? ms : t->max_ms;
}

static void stale_figure(const char *phase, const stale_tally_t *t)
{
    FIGURE("db_down_serves_stale",
           "phase=%s reads=%zu status_200=%zu 5xx=%zu stale_200=%zu hit=%zu "
           "miss=%zu same_body=%zu tier_near=%zu tier_redis=%zu "
           "age_ge_1s=%zu age_min_s=%ld age_max_s=%ld max_ms=%.1f",
           phase, t->reads, t->status_200, t->status_5xx, t->stale, t->hit,
           t->miss, t->same_body, t->tier_near, t->tier_redis, t->aged,
           t->age_min, t->age_max, t->max_ms);
}

/* A tally with no reads yet. */
static void stale_tally_init(stale_tally_t *t)
{
    memset(t, 0, sizeof(*t));
    t->age_min = -1;
    t->age_max = -1;
}

/* PostgreSQL, Redis and a service on them whose feedback stats live
 * STALE_TTL_S, in the world (so that the teardown stops them). */
static void stale_world_start(stale_world_t *w)
{
    char ttl_env[64];
    const char *ttl[] = {ttl_env, NULL};

    fmt(ttl_env, sizeof(ttl_env), "UTXOCACHE_TTL_FEEDBACK_STATS=%d",
        STALE_TTL_S);
    assert_int_equal(uc_test_pg_start(&w->pg), 0);
    w->pg_started = 1;
    assert_int_equal(uc_test_redis_start(&w->redis, NULL), 0);
    w->redis_started = 1;
    start_api(&w->api, w->pg.url, &w->redis, ttl);
}

static void test_db_down_serves_stale(void **state)
{
    stale_world_t *w = *state;
    stale_tally_t down, back;
    char ids[STALE_N][64], keys[3][128], never[64];
    long long totals[STALE_N];
    api_res_t r;
    double ms, miss_ms, write_ms;
    if (!uc_test_pg_available()) {
        skip();
    }
    stale_tally_init(&down);
    stale_tally_init(&back);
    stale_world_start(w);
    for (int i = 0; i < 3; i++) {
        char user[64];
        uniq(user, sizeof(user), "staleuser");
        assert_int_equal(
            uc_test_api_key(&w->api, user, "user", keys[i], sizeof(keys[i])),
            0);
    }
    int near = near_enabled(&w->api);

    /* N insights, one or two ratings each, read until cached: the body
     * of the HIT is what the cache holds. */
    for (int i = 0; i < STALE_N; i++) {
        uniq(ids[i], sizeof(ids[i]), "fault-stale");
        assert_int_equal(rate(&w->api, keys[0], ids[i], i % 5 + 1, NULL), 200);
        totals[i] = 1;
        if (i % 2 == 1) {
            assert_int_equal(rate(&w->api, keys[1], ids[i], 5, NULL), 200);
            totals[i] = 2;
        }
        get_stats(&w->api, &r, ids[i], NULL);
        assert_status(&r, 200);
        assert_string_equal(r.h.x_cache, "MISS");
        api_free(&r);
        get_stats(&w->api, &r, ids[i], NULL);
        assert_status(&r, 200);
        assert_string_equal(r.h.x_cache, "HIT");
        assert_int_equal(jint(r.j, "total_ratings"), totals[i]);
        w->body[i] = strdup(r.h.body);
        assert_non_null(w->body[i]);
        api_free(&r);
    }
    uint64_t filled_ms = uc_test_now_ms();
    uniq(never, sizeof(never), "fault-stale-never");

    /* Down, and every entry past its TTL (not past its grace). */
    assert_int_equal(uc_test_pg_down(&w->pg), 0);
    while (uc_test_now_ms() < filled_ms + STALE_EXPIRED_MS) {
        uc_test_sleep_ms(20);
    }
    for (int i = 0; i < STALE_N; i++) {
        get_stats(&w->api, &r, ids[i], &ms);
        if (r.h.status != 200 || strcmp(r.h.x_cache, "STALE") != 0) {
            fprintf(stderr, "stale read %d: %ld X-Cache '%s' body %s\n", i,
                    r.h.status, r.h.x_cache, r.h.body);
        }
        stale_count(&down, &r, w->body[i], ms);
        api_free(&r);
    }

    /* Nothing to fall back on, and a write the database cannot take: it
     * is refused and shown nowhere, the entry is still marked stale. */
    get_stats(&w->api, &r, never, &miss_ms);
    long never_status = r.h.status;
    int never_detail =
        r.j != NULL && json_is_string(json_object_get(r.j, "detail")) &&
        strstr(json_string_value(json_object_get(r.j, "detail")), "database") !=
            NULL;
    api_free(&r);
    long refused = rate(&w->api, keys[2], ids[0], 1, &write_ms);
    get_stats(&w->api, &r, ids[0], &ms);
    stale_count(&down, &r, w->body[0], ms);
    api_free(&r);
    stale_figure("db_down", &down);
    FIGURE("db_down_serves_stale",
           "near_enabled=%d ttl_s=%d waited_past_fill_ms=%d "
           "never_cached_status=%ld never_cached_ms=%.1f write_status=%ld "
           "write_ms=%.1f bound_ms=%d",
           near, STALE_TTL_S, STALE_EXPIRED_MS, never_status, miss_ms, refused,
           write_ms, DB_BOUND_MS);

    /* Back, on the same process: fresh answers, the committed totals. */
    uint64_t t_up = uc_test_now_ms();
    assert_int_equal(uc_test_pg_up(&w->pg), 0);
    FIGURE("db_down_serves_stale", "pg_up_ms=%.0f",
           (double)(uc_test_now_ms() - t_up));
    size_t right_totals = 0, reconnect_stale = 0;
    for (int i = 0; i < STALE_N; i++) {
        for (int k = 0; k < 2; k++) {
            /* The first loads after the restart open new connections, which
             * may outlast the soft timeout: such a read answers STALE while
             * its load goes on (bounded here by the database's bound). */
            uint64_t until = uc_test_now_ms() + DB_BOUND_MS;
            get_stats(&w->api, &r, ids[i], &ms);
            while (r.h.status == 200 && strcmp(r.h.x_cache, "STALE") == 0 &&
                   uc_test_now_ms() < until) {
                reconnect_stale++;
                api_free(&r);
                uc_test_sleep_ms(20);
                get_stats(&w->api, &r, ids[i], &ms);
            }
            stale_count(&back, &r, NULL, ms);
            right_totals +=
                r.j != NULL && r.h.status == 200 &&
                json_integer_value(json_object_get(r.j, "total_ratings")) ==
                    totals[i];
            if (k == 0 && strcmp(r.h.x_cache, "MISS") != 0) {
                fprintf(stderr, "read %d after up: %ld X-Cache '%s'\n", i,
                        r.h.status, r.h.x_cache);
            }
            api_free(&r);
        }
    }
    /* A rating write invalidates as usual. */
    long written = rate(&w->api, keys[2], ids[0], 1, NULL);
    get_stats(&w->api, &r, ids[0], NULL);
    long after_status = r.h.status;
    char after_cache[16];
    fmt(after_cache, sizeof(after_cache), "%s", r.h.x_cache);
    long long after_total =
        r.j != NULL ? json_integer_value(json_object_get(r.j, "total_ratings"))
                    : -1;
    api_free(&r);
    stale_figure("db_back", &back);
    FIGURE("db_down_serves_stale", "stale_while_reconnecting=%zu",
           reconnect_stale);
    FIGURE("db_down_serves_stale",
           "back_right_totals=%zu of %d write_after_up=%ld "
           "read_after_write=%ld x_cache=%s total=%lld want=%lld",
           right_totals, 2 * STALE_N, written, after_status, after_cache,
           after_total, totals[0] + 1);

    assert_true(near);
    /* Every cached insight, and the one read again after the refused
     * write: 200, STALE, aged, the cached body. */
    assert_int_equal(down.reads, STALE_N + 1);
    assert_int_equal(down.status_200, down.reads);
    assert_int_equal(down.status_5xx, 0);
    assert_int_equal(down.stale, down.reads);
    assert_int_equal(down.aged, down.reads);
    assert_int_equal(down.same_body, down.reads);
    assert_int_equal(down.tier_near + down.tier_redis, down.reads);
    assert_true(down.max_ms <= (double)DB_BOUND_MS);
    assert_int_equal(never_status, 503);
    assert_true(never_detail);
    assert_true(miss_ms <= (double)DB_BOUND_MS);
    assert_int_equal(refused, 503);
    assert_true(write_ms <= (double)DB_BOUND_MS);
    /* Back: a MISS (the database's value) then a HIT for every insight,
     * never STALE, with the committed totals (the refused write in none). */
    assert_int_equal(back.status_200, back.reads);
    assert_int_equal(back.stale, 0);
    /* A read that answered stale while reconnecting left its load to
     * store the value: its next read is a HIT, not a MISS. */
    assert_int_equal(back.miss + back.hit, 2 * STALE_N);
    assert_true(back.hit >= STALE_N);
    assert_int_equal(right_totals, back.reads);
    assert_int_equal(written, 200);
    assert_int_equal(after_status, 200);
    /* The write's invalidation: a MISS, or a HIT of the value its refill
     * stored (warm on write); the write's total either way. */
    assert_true(strcmp(after_cache, "MISS") == 0 ||
                strcmp(after_cache, "HIT") == 0);
    assert_int_equal(after_total, totals[0] + 1);
    assert_int_equal(uc_test_api_stop(&w->api), 0);
}

/* A counter of the cache statistics' totals. */
static long long cache_total(uc_test_api_t *a, const char *name)
{
    api_res_t r;
    api_req(a, &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL, NULL);
    assert_status(&r, 200);
    long long v = jint(jget(r.j, "totals"), name);
    api_free(&r);
    return v;
}

/*
 * The database hangs (every PostgreSQL process stopped, connections open)
 * while the entries are past their TTL: every read answers the cached body,
 * STALE, after the soft timeout, without waiting for the database's own
 * timeout; the loads go on in the background. Resumed, the same process
 * answers fresh values again.
 */
static void test_db_hung_serves_stale(void **state)
{
    stale_world_t *w = *state;
    stale_tally_t hung, back;
    char ids[STALE_N][64], key[128];
    api_res_t r;
    double ms;
    if (!uc_test_pg_available()) {
        skip();
    }
    stale_tally_init(&hung);
    stale_tally_init(&back);
    stale_world_start(w);
    assert_int_equal(
        uc_test_api_key(&w->api, "hunguser", "user", key, sizeof(key)), 0);
    for (int i = 0; i < STALE_N; i++) {
        uniq(ids[i], sizeof(ids[i]), "fault-hung");
        assert_int_equal(rate(&w->api, key, ids[i], i % 5 + 1, NULL), 200);
        get_stats(&w->api, &r, ids[i], NULL);
        assert_status(&r, 200);
        w->body[i] = strdup(r.h.body);
        assert_non_null(w->body[i]);
        api_free(&r);
    }
    uint64_t filled_ms = uc_test_now_ms();
    long long soft_before = cache_total(&w->api, "soft_timeouts");
    while (uc_test_now_ms() < filled_ms + STALE_EXPIRED_MS) {
        uc_test_sleep_ms(20);
    }

    assert_true(uc_test_pg_signal(&w->pg, SIGSTOP) > 0);
    for (int i = 0; i < STALE_N; i++) {
        get_stats(&w->api, &r, ids[i], &ms);
        stale_count(&hung, &r, w->body[i], ms);
        api_free(&r);
    }
    long long soft = cache_total(&w->api, "soft_timeouts") - soft_before;
    assert_true(uc_test_pg_signal(&w->pg, SIGCONT) > 0);
    stale_figure("db_hung", &hung);
    FIGURE("db_hung_serves_stale",
           "soft_timeouts=%lld db_wait_ms=%d (the database's own timeout + "
           "grace)",
           soft, DB_TIMEOUT_MS + DB_GRACE_MS);

    /* Resumed: each insight is answered fresh again (the background load
     * stored it, or the next read loads it), never an error. */
    size_t fresh = 0;
    for (int i = 0; i < STALE_N; i++) {
        uint64_t until = uc_test_now_ms() + DB_BOUND_MS;
        for (;;) {
            get_stats(&w->api, &r, ids[i], &ms);
            int again = r.h.status == 200 &&
                        strcmp(r.h.x_cache, "STALE") == 0 &&
                        uc_test_now_ms() < until;
            if (!again) {
                stale_count(&back, &r, w->body[i], ms);
                fresh += r.h.status == 200 &&
                         strcmp(r.h.x_cache, "STALE") != 0 &&
                         strcmp(r.h.body, w->body[i]) == 0;
                api_free(&r);
                break;
            }
            api_free(&r);
            uc_test_sleep_ms(20);
        }
    }
    stale_figure("db_resumed", &back);

    assert_int_equal(hung.reads, STALE_N);
    assert_int_equal(hung.status_200, STALE_N);
    assert_int_equal(hung.stale, STALE_N);
    assert_int_equal(hung.same_body, STALE_N);
    assert_int_equal(hung.aged, STALE_N);
    /* The soft timeout (50 ms), not the database's wait, bounded each. */
    assert_true(hung.max_ms < (double)(DB_TIMEOUT_MS + DB_GRACE_MS));
    assert_true(soft >= 1);
    assert_int_equal(back.status_200, STALE_N);
    assert_int_equal(fresh, STALE_N);
    assert_int_equal(uc_test_api_stop(&w->api), 0);
}

/* The randomized concurrent run: writers with distinct users and known
 * ratings, readers of the same insight; the checker judges every read. */
static void rw_run(const char *label, const uc_test_redis_t *redis)
{
    uc_test_api_t api;
    keys_t k;
    uc_fault_check_t c;
    char id[64];
    memset(&api, 0, sizeof(api));
    start_api(&api, NULL, redis, NULL);
    keys_make(&api, &k, "rw", (size_t)RW_WRITERS * RW_KEYS_PER_WRITER);
    uniq(id, sizeof(id), "fault-rw");
    uc_fault_load_t *l = load_start(&api, id, &k, RW_WRITERS, RW_READERS, RW_MS,
                                    RW_MS / (2 * RW_KEYS_PER_WRITER));
    uc_fault_wait(l);
    uc_fault_check(l, &c);
    assert_nothing_lost(label, &c);
    wait_hit_with(&api, l, id, c.writes_ok, 0);
    uc_fault_free(l);
    keys_free(&k);
    assert_int_equal(uc_test_api_stop(&api), 0);
    uc_test_api_destroy(&api);
}

static void test_concurrent_rw_memory(void **state)
{
    (void)state;
    rw_run("rw_memory", NULL);
}

static void test_concurrent_rw_redis(void **state)
{
    uc_test_redis_t redis;
    (void)state;
    assert_int_equal(uc_test_redis_start(&redis, NULL), 0);
    rw_run("rw_redis", &redis);
    uc_test_redis_stop(&redis);
}

/* A read record with distribution d (ratings 1..5) over [s, e] ms. */
static uc_fault_op_t rec_read(uint64_t s, uint64_t e, const long long d[5])
{
    uc_fault_op_t op = {.start_us = s * 1000,
                        .end_us = e * 1000,
                        .kind = UC_FAULT_READ,
                        .status = 200,
                        .total = 0};
    for (int i = 0; i < 5; i++) {
        op.dist[i] = d[i];
        op.total += d[i];
    }
    return op;
}

/* The checker itself: it must flag a read older than an acknowledged write
 * (and say by how much), a read counting a write never sent, and accept a
 * read that does or does not see a write still in flight. */
static void test_checker_flags_stale_reads(void **state)
{
    uc_fault_check_t c;
    const long long none[5] = {0, 0, 0, 0, 0};
    const long long one4[5] = {0, 0, 0, 1, 0};
    const long long one5[5] = {0, 0, 0, 0, 1};
    uc_fault_op_t ops[4] = {
        {.start_us = 10000,
         .end_us = 20000,
         .kind = UC_FAULT_WRITE,
         .rating = 4,
         .status = 200},
    };
    (void)state;
    ops[1] = rec_read(15, 25, none); /* concurrent with the write: fine */
    ops[2] = rec_read(30, 31, one4); /* after it, sees it: fine */
    ops[3] = rec_read(50, 51, none); /* after it, misses it: stale by 30 ms */
    uc_fault_check_ops(ops, 4, &c);
    assert_int_equal(c.reads, 3);
    assert_int_equal(c.stale_reads, 1);
    assert_int_equal(c.impossible_reads, 0);
    assert_true(c.max_staleness_ms == 30.0);

    ops[3] = rec_read(50, 51, one5); /* a rating nobody sent */
    uc_fault_check_ops(ops, 4, &c);
    assert_int_equal(c.impossible_reads, 1);

    ops[0].status = 503; /* a refused write may or may not be seen */
    ops[3] = rec_read(50, 51, none);
    uc_fault_check_ops(ops, 4, &c);
    assert_int_equal(c.stale_reads, 0);
    assert_int_equal(c.impossible_reads, 0);
    assert_int_equal(c.status_5xx, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_flags_stale_reads),
        cmocka_unit_test(test_redis_killed_under_load),
        cmocka_unit_test(test_redis_hung_under_load),
        cmocka_unit_test(test_db_hung_and_down),
        cmocka_unit_test_setup_teardown(test_db_down_serves_stale, stale_setup,
                                        stale_teardown),
        cmocka_unit_test_setup_teardown(test_db_hung_serves_stale, stale_setup,
                                        stale_teardown),
        cmocka_unit_test(test_redis_and_db_down),
        cmocka_unit_test(test_concurrent_rw_memory),
        cmocka_unit_test(test_concurrent_rw_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
