/* SPDX-License-Identifier: MIT */
/*
 * utxoiq-api over a real redis-server of the test's own: the cache rules
 * through Redis (MISS, HIT, invalidation after each kind of write, ETag;
 * no write runs a SCAN, every cached page follows the writes that change
 * it through its tags),
 * the Redis figures of the cache statistics, and the faults: Redis killed in
 * the middle of a run (every read still 200 from the database, writes still
 * commit), Redis hung while a write invalidates (the invalidation is queued
 * and retried, so the old value is never served afterwards), and Redis back
 * again (hits return).
 */
#include "api_test.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>

#include "redis_server.h"
#include "util.h"

static uc_test_api_t api;
static uc_test_redis_t redis;
static char admin_key[128];
static char user_key[128];
static char service_key[128];

static char redis_url[64];
/* Short Redis waits and a quick breaker keep the fault tests brief; no
 * refills, so that the read after a write misses and shows the write's
 * invalidation (but in the test of refills, which sets the last slots). */
static const char *group_env[] = {redis_url,
                                  "REDIS_COMMAND_TIMEOUT_MS=150",
                                  "REDIS_CONNECT_TIMEOUT_MS=150",
                                  "UTXOCACHE_BREAKER_THRESHOLD=2",
                                  "UTXOCACHE_BREAKER_COOLDOWN_MS=200",
                                  "UTXOCACHE_KEY_PREFIX=utxoiq-test:",
                                  "UTXOCACHE_REFILL_TOP=0",
                                  NULL,
                                  NULL,
                                  NULL};
#define GROUP_ENV_OWN 6

static int group_setup(void **state)
{
    (void)state;
    if (uc_test_redis_start(&redis, NULL) != 0) {
        return -1;
    }
    snprintf(redis_url, sizeof(redis_url), "REDIS_URL=redis://127.0.0.1:%d/0",
             redis.port);
    if (uc_test_api_start(&api, NULL, group_env) != 0) {
        return -1;
    }
    const uc_test_api_user_t users[] = {
        {"admin", "admin", admin_key, sizeof(admin_key)},
        {"alice", "user", user_key, sizeof(user_key)},
        {"svc", "service", service_key, sizeof(service_key)},
    };
    return uc_test_api_keys(&api, users, sizeof(users) / sizeof(users[0]));
}

static int group_teardown(void **state)
{
    (void)state;
    uc_test_api_destroy(&api);
    uc_test_redis_stop(&redis);
    return 0;
}

static void rate(const char *insight, int rating)
{
    char body[256];
    api_res_t r;
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":%d}", insight,
        rating);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, body, NULL);
    assert_status(&r, 200);
    api_free(&r);
}

/* GET that must answer 200; returns the X-Cache value in xc. */
static long long stats_ratings(const char *insight, char *xc, size_t cap)
{
    char path[256];
    api_res_t r;
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", insight);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    long long n = jint(r.j, "total_ratings");
    if (xc != NULL) {
        snprintf(xc, cap, "%s", r.h.x_cache);
    }
    api_free(&r);
    return n;
}

static void test_redis_hit_miss_invalidate(void **state)
{
    char id[64], xc[16], path[256], etag[80], inm[128];
    api_res_t r;
    (void)state;
    uniq(id, sizeof(id), "r");
    assert_int_equal(stats_ratings(id, xc, sizeof(xc)), 0);
    assert_string_equal(xc, "MISS");
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    snprintf(etag, sizeof(etag), "%s", r.h.etag);
    api_free(&r);
    fmt(inm, sizeof(inm), "If-None-Match: %s", etag);
    api_req(&api, &r, "GET", path, NULL, NULL, inm);
    assert_status(&r, 304);
    api_free(&r);

    /* The entry really is in Redis, under the prefix. */
    char out[64];
    char cmd[256];
    fmt(cmd, sizeof(cmd), "EXISTS utxoiq-test:feedback:stats:%s", id);
    assert_int_equal(uc_test_redis_cli(&redis, NULL, cmd, out, sizeof(out)), 0);
    assert_string_equal(out, "1");

    rate(id, 5);
    assert_int_equal(stats_ratings(id, xc, sizeof(xc)), 1);
    assert_string_equal(xc, "MISS");
    assert_int_equal(stats_ratings(id, xc, sizeof(xc)), 1);
    assert_string_equal(xc, "HIT");
}

static void test_redis_job_and_metrics_invalidate(void **state)
{
    api_res_t r;
    char job[64], path[256], svc[64], body[512];
    (void)state;
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/start", admin_key,
            "{\"job_type\":\"blocks\",\"start_block\":0,\"end_block\":10}",
            NULL);
    assert_status(&r, 200);
    snprintf(job, sizeof(job), "%s", jstr(r.j, "id"));
    api_free(&r);
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/%s", job);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    api_free(&r);
    fmt(body, sizeof(body), "/api/v1/monitoring/backfill/progress?job_id=%s",
        job);
    api_req(&api, &r, "POST", body, service_key,
            "{\"current_block\":7,\"progress_percentage\":70}", NULL);
    assert_status(&r, 200);
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(jint(r.j, "current_block"), 7);
    api_free(&r);

    uniq(svc, sizeof(svc), "rsvc");
    fmt(path, sizeof(path),
        "/api/v1/monitoring/metrics/aggregate?service_name=%s"
        "&metric_type=q&interval=day",
        svc);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    assert_int_equal(json_array_size(jget(r.j, "data")), 0);
    api_free(&r);
    fmt(body, sizeof(body),
        "{\"service_name\":\"%s\",\"metric_type\":\"q\",\"metric_value\":3,"
        "\"unit\":\"n\"}",
        svc);
    api_req(&api, &r, "POST", "/api/v1/monitoring/metrics", service_key, body,
            NULL);
    assert_status(&r, 200);
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(json_array_size(jget(r.j, "data")), 1);
    api_free(&r);
}

/* calls= of one command in the server's INFO commandstats (0: never). */
static long long cmd_calls(const char *cmd)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis.port, tv);
    char want[64];
    long long n = 0;

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisSetTimeout(c, tv);
    redisReply *r = redisCommand(c, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    fmt(want, sizeof(want), "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, want);
    if (p != NULL) {
        n = atoll(p + strlen(want));
    }
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* A cached GET: 200, a MISS (the first read after a write) then a HIT with
 * the same bytes; returns the parsed body (the caller's). */
static json_t *miss_then_hit(const char *path, const char *key)
{
    api_res_t r1, r2;
    api_req(&api, &r1, "GET", path, key, NULL, NULL);
    assert_status(&r1, 200);
    if (strcmp(r1.h.x_cache, "MISS") != 0) {
        fprintf(stderr, "%s: X-Cache %s\n", path, r1.h.x_cache);
    }
    assert_string_equal(r1.h.x_cache, "MISS");
    api_req(&api, &r2, "GET", path, key, NULL, NULL);
    assert_status(&r2, 200);
    assert_string_equal(r2.h.x_cache, "HIT");
    assert_string_equal(r2.h.body, r1.h.body);
    json_t *j = json_incref(r1.j);
    api_free(&r1);
    api_free(&r2);
    return j;
}

static void post(const char *path, const char *key, const char *body,
                 long status)
{
    api_res_t r;
    api_req(&api, &r, "POST", path, key, body, NULL);
    assert_status(&r, status);
    api_free(&r);
}

/*
 * Every kind of write, each followed by the cached pages it changes: each
 * is a MISS with the new contents (its tag was invalidated), then a HIT;
 * and the server never ran SCAN for any of them.
 */
static void test_redis_writes_never_scan(void **state)
{
    char id[64], svc[64], typ[64], job[64], path[512], body[512];
    char p_stats[256], p_comments[256], p_jobs[256], p_failed[256];
    char p_recent[256], p_agg[256], p_window[512];
    const char *p_user = "/api/v1/feedback/user?limit=100";
    api_res_t r;
    json_t *j;
    (void)state;

    uniq(id, sizeof(id), "ns");
    uniq(svc, sizeof(svc), "svc");
    uniq(typ, sizeof(typ), "typ");
    fmt(p_stats, sizeof(p_stats), "/api/v1/feedback/stats/%s", id);
    fmt(p_comments, sizeof(p_comments),
        "/api/v1/feedback/comments?insight_id=%s", id);
    fmt(p_jobs, sizeof(p_jobs),
        "/api/v1/monitoring/backfill/status?job_type=%s", typ);
    fmt(p_failed, sizeof(p_failed),
        "/api/v1/monitoring/backfill/status?job_type=%s&status=failed", typ);
    /* The original clients' "last hour up to now"; made again before each
     * read, so that its end stays "now" and it reads the recent page. */
    last_hour(p_recent, sizeof(p_recent), svc, "cpu", "");
    fmt(p_agg, sizeof(p_agg),
        "/api/v1/monitoring/metrics/aggregate?service_name=%s&metric_type=cpu",
        svc);
    fmt(p_window, sizeof(p_window),
        "/api/v1/monitoring/metrics?service_name=%s&metric_type=cpu&"
        "start_time=2000-01-01T00:00:00Z&end_time=2100-01-01T00:00:00Z",
        svc);
    const char *all[] = {p_stats,  p_comments, p_user,   p_jobs,
                         p_failed, p_recent,   p_window, p_agg};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        json_decref(miss_then_hit(all[i], all[i] == p_user ? user_key : NULL));
    }
    long long scans = cmd_calls("scan");

    /* feedback: rate, comment, flag */
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":4}", id);
    post("/api/v1/feedback/rate", user_key, body, 200);
    j = miss_then_hit(p_stats, NULL);
    assert_int_equal(jint(j, "total_ratings"), 1);
    json_decref(j);
    j = miss_then_hit(p_user, user_key);
    assert_true(jint(j, "total") >= 1);
    json_decref(j);
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"comment\":\"hi\"}", id);
    post("/api/v1/feedback/comment", user_key, body, 200);
    j = miss_then_hit(p_comments, NULL);
    assert_int_equal(jint(j, "total"), 1);
    json_decref(j);
    j = miss_then_hit(p_stats, NULL);
    assert_int_equal(jint(j, "total_comments"), 1);
    json_decref(j);
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"flag_type\":\"spam\"}",
        id);
    post("/api/v1/feedback/flag", user_key, body, 200);
    j = miss_then_hit(p_stats, NULL);
    assert_int_equal(jint(j, "total_flags"), 1);
    json_decref(j);
    json_decref(miss_then_hit(p_comments, NULL));
    json_decref(miss_then_hit(p_user, user_key));

    /* backfill: create, update */
    fmt(body, sizeof(body),
        "{\"job_type\":\"%s\",\"start_block\":0,\"end_block\":10}", typ);
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/start", admin_key,
            body, NULL);
    assert_status(&r, 200);
    snprintf(job, sizeof(job), "%s", jstr(r.j, "id"));
    api_free(&r);
    j = miss_then_hit(p_jobs, NULL);
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/%s", job);
    json_decref(miss_then_hit(path, NULL));
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/progress?job_id=%s",
        job);
    post(path, service_key,
         "{\"current_block\":5,\"progress_percentage\":50,"
         "\"status\":\"failed\",\"error_message\":\"x\"}",
         200);
    j = miss_then_hit(p_failed, NULL);
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/%s", job);
    j = miss_then_hit(path, NULL);
    assert_string_equal(jstr(j, "status"), "failed");
    json_decref(j);

    /* metrics: one, then a batch */
    fmt(body, sizeof(body),
        "{\"service_name\":\"%s\",\"metric_type\":\"cpu\","
        "\"metric_value\":1.5,\"unit\":\"pct\"}",
        svc);
    post("/api/v1/monitoring/metrics", service_key, body, 200);
    last_hour(p_recent, sizeof(p_recent), svc, "cpu", "");
    j = miss_then_hit(p_recent, NULL);
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
    j = miss_then_hit(p_window, NULL);
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
    json_decref(miss_then_hit(p_agg, NULL));
    fmt(body, sizeof(body),
        "[{\"service_name\":\"%s\",\"metric_type\":\"cpu\","
        "\"metric_value\":2,\"unit\":\"pct\"},"
        "{\"service_name\":\"%s\",\"metric_type\":\"mem\","
        "\"metric_value\":3,\"unit\":\"mb\"}]",
        svc, svc);
    post("/api/v1/monitoring/metrics/batch", service_key, body, 200);
    j = miss_then_hit(p_window, NULL);
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
    last_hour(p_recent, sizeof(p_recent), svc, "cpu", "");
    j = miss_then_hit(p_recent, NULL);
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
    json_decref(miss_then_hit(p_agg, NULL));

    assert_int_equal(cmd_calls("scan"), scans);
}

static void test_redis_cache_stats(void **state)
{
    api_res_t r;
    (void)state;
    api_req(&api, &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL,
            NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "backend"), "redis");
    json_t *rd = jget(r.j, "redis");
    assert_true(json_is_object(rd));
    assert_true(jint(rd, "used_memory") > 0);
    jint(rd, "evicted_keys");
    json_t *fs = jget(jget(r.j, "keyspaces"), "feedback_stats");
    assert_true(jint(fs, "keys") >= 1);
    assert_true(jint(fs, "hits") >= 1);
    /* Every hit is a near hit or a Redis hit, and a near miss is a read
     * that went on to Redis. */
    json_t *tn = jget(jget(fs, "tiers"), "near");
    json_t *tr = jget(jget(fs, "tiers"), "redis");
    assert_true(json_is_object(tn) && json_is_object(tr));
    assert_int_equal(jint(tn, "hits") + jint(tr, "hits"), jint(fs, "hits"));
    assert_int_equal(jint(tn, "hits"), jint(fs, "near_hits"));
    assert_int_equal(jint(tr, "misses"), jint(fs, "misses"));
    assert_int_equal(jint(tn, "misses"), jint(tr, "hits") + jint(tr, "misses"));
    assert_true(jint(jget(r.j, "pool"), "connects") >= 1);
    api_free(&r);
    api_req(&api, &r, "GET", "/readyz", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(jget(r.j, "cache"), "status"), "ok");
    api_free(&r);
}

/* One counter of a keyspace in /api/v1/monitoring/cache/stats. */
static long long ks_counter(const char *ks, const char *name)
{
    api_res_t r;
    api_req(&api, &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL,
            NULL);
    assert_status(&r, 200);
    long long n = jint(jget(jget(r.j, "keyspaces"), ks), name);
    api_free(&r);
    return n;
}

/* Warm on write, as the service runs by default: the read after a write of
 * a hot insight is a hit, with the write's effect in it. */
static void test_redis_refill_after_write(void **state)
{
    char id[64], xc[16];
    (void)state;
    group_env[GROUP_ENV_OWN] = "UTXOCACHE_REFILL_TOP=1000";
    group_env[GROUP_ENV_OWN + 1] = "UTXOCACHE_HOT_SAMPLE=1";
    /* A bound for a slow machine (sanitizers): the wait ends as soon as
     * the refill is stored. */
    group_env[GROUP_ENV_OWN + 2] = "UTXOCACHE_REFILL_WAIT_MS=2000";
    assert_int_equal(uc_test_api_restart(&api, group_env), 0);

    /* Read more often than written (refills are for entries read at least
     * 3 times a write). */
    uniq(id, sizeof(id), "refill");
    for (int i = 0; i < 6; i++) {
        assert_int_equal(stats_ratings(id, xc, sizeof(xc)), 0);
    }
    assert_string_equal(xc, "HIT");
    long long refills = ks_counter("feedback_stats", "refills");
    long long hits = ks_counter("feedback_stats", "refill_hits");
    /* The write answers once its refill is stored (UTXOCACHE_REFILL_WAIT_MS):
     * the very next read is a hit. */
    rate(id, 4);
    assert_int_equal(stats_ratings(id, xc, sizeof(xc)), 1);
    assert_string_equal(xc, "HIT");
    assert_int_equal(ks_counter("feedback_stats", "refills"), refills + 1);
    assert_int_equal(ks_counter("feedback_stats", "refill_hits"), hits + 1);

    group_env[GROUP_ENV_OWN] = "UTXOCACHE_REFILL_TOP=0";
    group_env[GROUP_ENV_OWN + 1] = NULL;
    group_env[GROUP_ENV_OWN + 2] = NULL;
    assert_int_equal(uc_test_api_restart(&api, group_env), 0);
}

/* Polls (bounded) until a stats read of insight is a HIT. */
static int wait_for_hit(const char *insight)
{
    char xc[16];
    uint64_t deadline = uc_test_now_ms() + 8000;
    while (uc_test_now_ms() < deadline) {
        stats_ratings(insight, xc, sizeof(xc));
        if (strcmp(xc, "HIT") == 0) {
            return 1;
        }
        uc_test_sleep_ms(50);
    }
    return 0;
}

static void test_redis_killed_mid_run(void **state)
{
    char id[64], xc[16];
    api_res_t r;
    (void)state;
    uniq(id, sizeof(id), "kill");
    rate(id, 3);
    stats_ratings(id, NULL, 0);
    assert_int_equal(stats_ratings(id, xc, sizeof(xc)), 1);
    assert_string_equal(xc, "HIT");

    uc_test_redis_kill(&redis);
    /* Reads keep answering 200, and writes commit. The near cache may
     * answer the first ones (no write happened, its copy is current) until
     * its channel's loss is seen, which is milliseconds; then the database
     * does. */
    int misses = 0;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(stats_ratings(id, xc, sizeof(xc)), 1);
        if (strcmp(xc, "MISS") == 0) {
            misses++;
        } else {
            assert_int_equal(misses, 0); /* never a HIT after a MISS */
            assert_string_equal(xc, "HIT");
            uc_test_sleep_ms(20);
        }
    }
    assert_true(misses >= 10);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key,
            "{\"insight_id\":\"kill-other\",\"rating\":4}", NULL);
    assert_status(&r, 200);
    api_free(&r);
    assert_int_equal(stats_ratings("kill-other", NULL, 0), 1);
    api_req(&api, &r, "GET", "/readyz", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_not_equal(jstr(jget(r.j, "cache"), "status"), "ok");
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL,
            NULL);
    assert_status(&r, 200);
    assert_true(
        jint(jget(jget(r.j, "keyspaces"), "feedback_stats"), "fallbacks") >= 1);
    api_free(&r);

    /* Redis back (empty): hits return, with the current value. */
    assert_int_equal(uc_test_redis_restart(&redis), 0);
    rate(id, 1);
    assert_true(wait_for_hit(id));
    assert_int_equal(stats_ratings(id, NULL, 0), 1);
    api_req(&api, &r, "GET", "/api/v1/feedback/stats/kill-other", NULL, NULL,
            NULL);
    assert_status(&r, 200);
    api_free(&r);
}

static void test_redis_hung_write_is_not_lost(void **state)
{
    char id[64], xc[16];
    api_res_t r;
    (void)state;
    uniq(id, sizeof(id), "hung");
    rate(id, 2);
    stats_ratings(id, NULL, 0);
    assert_true(wait_for_hit(id));

    /* Freeze Redis: the write's invalidation times out and is queued. */
    assert_int_equal(uc_test_redis_signal(&redis, SIGSTOP), 0);
    char body[256];
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":5}", id);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, body, NULL);
    assert_status(&r, 200);
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL,
            NULL);
    assert_status(&r, 200);
    assert_true(jint(jget(r.j, "invalidation_queue"), "failed") >= 1);
    api_free(&r);
    /* While frozen, reads are still answered, with the new value. */
    for (int i = 0; i < 5; i++) {
        char path[256];
        fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
        api_req(&api, &r, "GET", path, NULL, NULL, NULL);
        assert_status(&r, 200);
        assert_true(jnum(r.j, "average_rating") == 5.0);
        api_free(&r);
    }
    assert_int_equal(uc_test_redis_signal(&redis, SIGCONT), 0);
    /* Once Redis answers again, the stale entry is gone: never 2.0 again. */
    uint64_t deadline = uc_test_now_ms() + 8000;
    int hit = 0;
    while (uc_test_now_ms() < deadline && !hit) {
        char path[256];
        fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
        api_req(&api, &r, "GET", path, NULL, NULL, NULL);
        assert_status(&r, 200);
        assert_true(jnum(r.j, "average_rating") == 5.0);
        hit = strcmp(r.h.x_cache, "HIT") == 0;
        api_free(&r);
        if (!hit) {
            uc_test_sleep_ms(50);
        }
    }
    assert_true(hit);
    (void)xc;
}

/* Last: the service that served every test above drains and exits 0; a
 * sanitizer report or a leak at exit makes that status non-zero. A test,
 * not the group teardown, since cmocka ignores a teardown that fails. */
/* Whether needle's n bytes occur in buf's len. */
static int has_bytes(const char *buf, size_t len, const char *needle, size_t n)
{
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(buf + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * A large answer is kept compressed in Redis (a gzip stream inside the
 * entry's envelope), so that a hit to a client that accepts gzip is sent
 * as stored; a client without gzip gets the JSON from the same entry.
 */
static void test_redis_large_kept_gzip(void **state)
{
    char id[64], body[1200], text[1000], path[256];
    api_res_t r;
    (void)state;

    uniq(id, sizeof(id), "gz");
    memset(text, 'y', 950);
    text[950] = '\0';
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"comment\":\"%s\"}", id,
        text);
    api_req(&api, &r, "POST", "/api/v1/feedback/comment", user_key, body, NULL);
    assert_status(&r, 200);
    api_free(&r);
    fmt(path, sizeof(path),
        "/api/v1/feedback/comments?insight_id=%s&limit=20&offset=0", id);
    api_req(&api, &r, "GET", path, NULL, NULL, "Accept-Encoding: gzip");
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "MISS");
    api_free(&r);

    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis.port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *v =
        redisCommand(c, "GET utxoiq-test:feedback:comments:%s:20:0", id);
    assert_non_null(v);
    assert_int_equal(v->type, REDIS_REPLY_STRING);
    assert_true(has_bytes(v->str, v->len, "\x1f\x8b\x08", 3));
    assert_false(has_bytes(v->str, v->len, text, 100)); /* not as text */
    assert_true(v->len < 600);
    freeReplyObject(v);
    redisFree(c);

    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "HIT");
    assert_non_null(r.j);
    assert_non_null(strstr(r.h.body, text));
    api_free(&r);
}

static void test_service_exits_zero(void **state)
{
    (void)state;
    assert_int_equal(uc_test_api_stop(&api), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_hit_miss_invalidate),
        cmocka_unit_test(test_redis_job_and_metrics_invalidate),
        cmocka_unit_test(test_redis_writes_never_scan),
        cmocka_unit_test(test_redis_cache_stats),
        cmocka_unit_test(test_redis_refill_after_write),
        cmocka_unit_test(test_redis_killed_mid_run),
        cmocka_unit_test(test_redis_hung_write_is_not_lost),
        cmocka_unit_test(test_redis_large_kept_gzip),
        cmocka_unit_test(test_service_exits_zero),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
