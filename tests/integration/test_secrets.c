/* SPDX-License-Identifier: MIT */
/*
 * No secret leaves utxoiq-api: the service runs against a Redis with
 * requirepass (the password in REDIS_URL), its database (SQLite, or the
 * shared PostgreSQL under UC_TEST_DB=postgresql), once more on a PostgreSQL
 * reached with a password in DATABASE_URL (skipped, and so reported, when
 * PostgreSQL is not installed), and API keys. Every endpoint is exercised,
 * errors included; then neither the Redis password, the database password nor
 * any API key (nor its secret part) may appear in the service's log, /metrics,
 * the cache stats, /readyz or any answer. A second test reads the SQLite
 * database file and its WAL byte by byte: keys are stored hashed, never in
 * plain text.
 */
#include <signal.h>
#include <stdlib.h>

#include "api_test.h"
#include "pg_server.h"
#include "redis_server.h"
#include "util.h"

/* Everything the service answered, concatenated, for one final scan. */
static char *seen;
static size_t seen_len;

static void keep(const char *p, size_t len)
{
    char *n = realloc(seen, seen_len + len + 2);
    assert_non_null(n);
    seen = n;
    memcpy(seen + seen_len, p, len);
    seen_len += len;
    seen[seen_len++] = '\n';
    seen[seen_len] = '\0';
}

static void call(uc_test_api_t *a, const char *method, const char *path,
                 const char *key, const char *body, const char *hdr)
{
    api_res_t r;
    api_req(a, &r, method, path, key, body, hdr);
    assert_true(r.h.status > 0 && r.h.status < 600);
    keep(r.h.body, r.h.len);
    api_free(&r);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    if (f == NULL) {
        return NULL;
    }
    for (;;) {
        if (*len + 4096 + 1 > cap) {
            cap = (*len + 4096) * 2;
            char *n = realloc(buf, cap);
            assert_non_null(n);
            buf = n;
        }
        size_t r = fread(buf + *len, 1, cap - *len - 1, f);
        if (r == 0) {
            break;
        }
        *len += r;
    }
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

static int contains(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n > 0 && i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Fails naming where a secret was found. */
static void assert_clean(const char *what, const char *hay, size_t len,
                         const char *const *secrets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (contains(hay, len, secrets[i])) {
            fprintf(stderr, "secret #%zu found in %s\n", i, what);
        }
        assert_false(contains(hay, len, secrets[i]));
    }
}

/*
 * Every endpoint against a Redis with a password, on the database the
 * test's entry chose (with_pg 0) or on a PostgreSQL of its own reached with
 * a password in DATABASE_URL (with_pg 1); then the scan for secrets.
 */
static void no_secret_in_outputs(int with_pg)
{
    uc_test_redis_t redis;
    uc_test_pg_t pg;
    uc_test_api_t api;
    char redis_pw[64], redis_url[256], admin[128], user[128], svc[128];
    int have_pg = 0;

    fmt(redis_pw, sizeof(redis_pw), "RedisPw-%ld-x7Q", (long)getpid());
    char conf[128];
    fmt(conf, sizeof(conf), "requirepass %s\n", redis_pw);
    assert_int_equal(uc_test_redis_start(&redis, conf), 0);
    fmt(redis_url, sizeof(redis_url), "REDIS_URL=redis://:%s@127.0.0.1:%d/0",
        redis_pw, redis.port);
    memset(&pg, 0, sizeof(pg));
    if (with_pg) {
        assert_int_equal(uc_test_pg_start(&pg), 0);
        have_pg = 1;
    }
    const char *env[] = {redis_url, "UTXOIQ_ACCESS_LOG=1", NULL};
    assert_int_equal(uc_test_api_start(&api, have_pg ? pg.url : NULL, env), 0);
    assert_int_equal(
        uc_test_api_key(&api, "ops", "admin", admin, sizeof(admin)), 0);
    assert_int_equal(uc_test_api_key(&api, "alice", "user", user, sizeof(user)),
                     0);
    assert_int_equal(uc_test_api_key(&api, "svc", "service", svc, sizeof(svc)),
                     0);
    /* A well-formed key that was never issued, with a real key's prefix. */
    char forged[128];
    fmt(forged, sizeof(forged), "%.12s%s", user,
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456");

    /* Every endpoint, good and bad. */
    call(&api, "GET", "/healthz", NULL, NULL, NULL);
    call(&api, "GET", "/readyz", NULL, NULL, NULL);
    call(&api, "POST", "/api/v1/feedback/rate", user,
         "{\"insight_id\":\"s1\",\"rating\":4,\"comment\":\"ok\"}", NULL);
    call(&api, "POST", "/api/v1/feedback/comment", user,
         "{\"insight_id\":\"s1\",\"comment\":\"c\"}", NULL);
    call(&api, "POST", "/api/v1/feedback/flag", user,
         "{\"insight_id\":\"s1\",\"flag_type\":\"spam\"}", NULL);
    call(&api, "POST", "/api/v1/feedback/rate", forged,
         "{\"insight_id\":\"s1\",\"rating\":4}", NULL);
    call(&api, "POST", "/api/v1/feedback/rate", "X:uiq_short", "{}", NULL);
    call(&api, "POST", "/api/v1/feedback/rate", svc,
         "{\"insight_id\":\"s1\",\"rating\":4}", NULL);
    call(&api, "POST", "/api/v1/feedback/rate", user, "{bad", NULL);
    call(&api, "POST", "/api/v1/feedback/rate", user,
         "{\"insight_id\":\"s1\",\"rating\":9}", NULL);
    call(&api, "GET", "/api/v1/feedback/stats?insight_id=s1", NULL, NULL, NULL);
    call(&api, "GET", "/api/v1/feedback/stats/s1", NULL, NULL, NULL);
    call(&api, "GET", "/api/v1/feedback/comments?insight_id=s1", NULL, NULL,
         NULL);
    call(&api, "GET", "/api/v1/feedback/user", user, NULL, NULL);
    call(&api, "GET", "/api/v1/feedback/user", NULL, NULL, NULL);
    call(&api, "POST", "/api/v1/monitoring/backfill/start", admin,
         "{\"job_type\":\"blocks\",\"start_block\":1,\"end_block\":9}", NULL);
    call(&api, "POST", "/api/v1/monitoring/backfill/start", user,
         "{\"job_type\":\"blocks\",\"start_block\":1,\"end_block\":9}", NULL);
    call(&api, "POST",
         "/api/v1/monitoring/backfill/progress?job_id="
         "00000000-0000-4000-8000-000000000000",
         svc, "{\"current_block\":1,\"progress_percentage\":1}", NULL);
    call(&api, "GET", "/api/v1/monitoring/backfill/status", NULL, NULL, NULL);
    call(&api, "GET",
         "/api/v1/monitoring/backfill/00000000-0000-4000-8000-000000000000",
         NULL, NULL, NULL);
    call(&api, "POST", "/api/v1/monitoring/metrics", svc,
         "{\"service_name\":\"s\",\"metric_type\":\"t\",\"metric_value\":1,"
         "\"unit\":\"u\"}",
         NULL);
    call(&api, "POST", "/api/v1/monitoring/metrics/batch", svc,
         "[{\"service_name\":\"s\",\"metric_type\":\"t\",\"metric_value\":1,"
         "\"unit\":\"u\"}]",
         NULL);
    call(&api, "GET",
         "/api/v1/monitoring/metrics?service_name=s&metric_type=t"
         "&start_time=2000-01-01T00:00:00&end_time=2100-01-01T00:00:00",
         NULL, NULL, NULL);
    call(&api, "GET",
         "/api/v1/monitoring/metrics/aggregate?service_name=s&metric_type=t",
         NULL, NULL, NULL);
    call(&api, "POST", "/api/v1/monitoring/retention/run", admin, NULL, NULL);
    call(&api, "DELETE", "/api/v1/feedback/rate", user, NULL, NULL);
    call(&api, "GET", "/nope", NULL, NULL, NULL);

    /* Redis down: the errors and the readiness report still name no
     * password. */
    assert_int_equal(uc_test_redis_signal(&redis, SIGSTOP), 0);
    call(&api, "GET", "/api/v1/feedback/stats?insight_id=s2", NULL, NULL, NULL);
    call(&api, "GET", "/readyz", NULL, NULL, NULL);
    assert_int_equal(uc_test_redis_signal(&redis, SIGCONT), 0);
    call(&api, "GET", "/metrics", NULL, NULL, NULL);
    call(&api, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL, NULL);
    call(&api, "GET", "/readyz", NULL, NULL, NULL);
    /* The cache really was Redis with the password (not a silent memory
     * fallback that would make the scan vacuous). */
    assert_non_null(strstr(seen, "\"backend\":\"redis\""));

    assert_int_equal(uc_test_api_stop(&api), 0);
    size_t log_len;
    char *log = slurp(api.log, &log_len);
    assert_non_null(log);
    /* The log saw the requests, so an empty log cannot pass. */
    assert_true(contains(log, log_len, "/api/v1/feedback/rate"));

    const char *secrets[8];
    size_t n = 0;
    secrets[n++] = redis_pw;
    if (have_pg) {
        secrets[n++] = pg.password;
    }
    /* Whole keys and the secret part after the public 12-char prefix. */
    secrets[n++] = admin + 12;
    secrets[n++] = user + 12;
    secrets[n++] = svc + 12;
    secrets[n++] = forged + 12;
    assert_clean("the service log", log, log_len, secrets, n);
    assert_clean("the answers", seen, seen_len, secrets, n);

    free(log);
    free(seen);
    seen = NULL;
    seen_len = 0;
    uc_test_api_destroy(&api);
    if (have_pg) {
        uc_test_pg_stop(&pg);
    }
    uc_test_redis_stop(&redis);
}

static void test_no_secret_in_outputs(void **state)
{
    (void)state;
    no_secret_in_outputs(0);
}

/* The database password is a secret only a PostgreSQL URL carries; without
 * PostgreSQL this half is reported as skipped, never passed. */
static void test_no_secret_in_outputs_postgresql(void **state)
{
    (void)state;
    if (!uc_test_pg_available()) {
        skip();
    }
    no_secret_in_outputs(1);
}

static void test_keys_stored_hashed(void **state)
{
    (void)state;
    uc_test_api_t api;
    char keys[3][128], path[700];
    /* Always SQLite here: its file is what is read. */
    char url[700];
    char dir[512];
    assert_int_equal(uc_test_mkdtemp(dir, sizeof(dir), "secrets-db"), 0);
    fmt(url, sizeof(url), "sqlite:%s/keys.db", dir);
    assert_int_equal(uc_test_api_start(&api, url, NULL), 0);
    assert_int_equal(uc_test_api_key(&api, "a", "admin", keys[0], 128), 0);
    assert_int_equal(uc_test_api_key(&api, "b", "user", keys[1], 128), 0);
    assert_int_equal(uc_test_api_key(&api, "c", "service", keys[2], 128), 0);
    /* The keys work, so they are in the database in some form. */
    api_res_t r;
    api_req(&api, &r, "GET", "/api/v1/feedback/user", keys[1], NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);
    assert_int_equal(uc_test_api_stop(&api), 0);

    const char *secrets[3] = {keys[0] + 12, keys[1] + 12, keys[2] + 12};
    static const char *const files[] = {"keys.db", "keys.db-wal"};
    int found_db = 0;
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        fmt(path, sizeof(path), "%s/%s", dir, files[i]);
        char *b = slurp(path, &len);
        if (b == NULL) {
            continue;
        }
        found_db += i == 0 && len > 0;
        /* The lookup prefix is stored in clear, by design. */
        if (i == 0) {
            assert_true(contains(b, len, "api_keys") ||
                        contains(b, len, "api_key"));
        }
        assert_clean(files[i], b, len, secrets, 3);
        free(b);
    }
    assert_int_equal(found_db, 1);
    uc_test_api_destroy(&api);
    uc_test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_secret_in_outputs),
        cmocka_unit_test(test_no_secret_in_outputs_postgresql),
        cmocka_unit_test(test_keys_stored_hashed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
