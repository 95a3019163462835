/* SPDX-License-Identifier: MIT */
/*
 * utxoiq-api as operators meet it: GET /metrics scraped after real traffic
 * (with a redis-server of the test's own) and checked by `promtool check
 * metrics`, its families' shape and its figures against the JSON cache
 * statistics; the logs (JSON format, level threshold, no password, and the
 * rate limit counted on the service's own stderr while Redis or PostgreSQL
 * is down under a burst of requests); and readiness when the database
 * cannot write: a SQLite file deleted under the running service, and a
 * PostgreSQL database set read-only (a real server of the test's own, so
 * this works as root, where a chmod would not stop a write).
 */
#include "api_test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "pg_server.h"
#include "redis_server.h"
#include "util.h"

/* A burst lasts BURST_MS (or BURST_MAX requests, whichever comes first,
 * with at least BURST_MIN), so that the rate limit's one-second windows
 * are really crossed. */
#define BURST_MS 1500
#define BURST_MIN 100
#define BURST_MAX 20000
/* Log lines (other than access lines) a burst may add: a few causes, each
 * written at most once a second, plus start-up slack. */
#define LINES_PER_S 6
#define LINES_SLACK 6

static char user_key[128];

/* What a test started, stopped by teardown even when an assertion ended
 * the test early (the stop functions are idempotent). */
static uc_test_api_t a;
static uc_test_redis_t redis;
static uc_test_pg_t pg;

static int setup(void **state)
{
    (void)state;
    memset(&a, 0, sizeof(a));
    memset(&redis, 0, sizeof(redis));
    memset(&pg, 0, sizeof(pg));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uc_test_api_destroy(&a);
    uc_test_redis_stop(&redis);
    uc_test_pg_stop(&pg);
    return 0;
}

static void start_with_key(const char *db_url, const char *const *env)
{
    assert_int_equal(uc_test_api_start(&a, db_url, env), 0);
    assert_int_equal(
        uc_test_api_key(&a, "alice", "user", user_key, sizeof(user_key)), 0);
}

static void rate(uc_test_api_t *srv, const char *insight, long want)
{
    char body[256];
    api_res_t r;
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":4}", insight);
    api_req(srv, &r, "POST", "/api/v1/feedback/rate", user_key, body, NULL);
    assert_status(&r, want);
    api_free(&r);
}

/* ---- /metrics ------------------------------------------------------------ */

/* The value of the sample `series` (name with labels, exactly as written),
 * or -1 when absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;
    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
        p += n;
    }
    return -1;
}

static char *scrape(uc_test_api_t *srv)
{
    api_res_t r;
    api_req(srv, &r, "GET", "/metrics", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_non_null(strstr(r.h.content_type, "text/plain"));
    char *body = strdup(r.h.body);
    api_free(&r);
    assert_non_null(body);
    return body;
}

/* Runs `promtool check metrics` on text; returns its exit status and
 * leaves what it printed (stdout and stderr) in out. */
static int promtool(uc_test_api_t *srv, const char *text, char *out, size_t cap)
{
    char in_path[700], out_path[700], cmd[1600];
    fmt(in_path, sizeof(in_path), "%s/metrics.txt", srv->dir);
    fmt(out_path, sizeof(out_path), "%s/promtool.out", srv->dir);
    FILE *f = fopen(in_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    fmt(cmd, sizeof(cmd), "promtool check metrics < '%s' > '%s' 2>&1", in_path,
        out_path);
    int st = system(cmd);
    out[0] = '\0';
    f = fopen(out_path, "r");
    if (f != NULL) {
        size_t n = fread(out, 1, cap - 1, f);
        out[n] = '\0';
        fclose(f);
    }
    return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

/* Every family's HELP and TYPE once, before its samples, and its samples
 * contiguous (a histogram's _bucket, _sum and _count belong to it). */
static void check_families(const char *text)
{
    char seen[256][96];
    size_t nseen = 0;
    char cur[96] = "";
    const char *p = text;
    while (*p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)len, p);
        p += len + (eol != NULL);
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[96];
            assert_int_equal(sscanf(line + 7, "%95s", name), 1);
            for (size_t i = 0; i < nseen; i++) {
                if (strcmp(seen[i], name) == 0) {
                    fprintf(stderr, "family %s written twice\n", name);
                    fail();
                }
            }
            assert_true(nseen < 256);
            snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
            snprintf(cur, sizeof(cur), "%s", name);
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[96];
            assert_int_equal(sscanf(line + 7, "%95s", name), 1);
            assert_string_equal(name, cur);
            continue;
        }
        if (line[0] == '\0') {
            continue;
        }
        size_t cl = strlen(cur);
        int ok = cl > 0 && strncmp(line, cur, cl) == 0 &&
                 (line[cl] == '{' || line[cl] == ' ' ||
                  strncmp(line + cl, "_bucket{", 8) == 0 ||
                  strncmp(line + cl, "_sum", 4) == 0 ||
                  strncmp(line + cl, "_count", 6) == 0);
        if (!ok) {
            fprintf(stderr, "sample outside its family '%s': %s\n", cur, line);
        }
        assert_true(ok);
    }
    assert_true(nseen > 40);
}

static void test_metrics_promtool(void **state)
{
    char url[64], id[64], path[128], series[160], out[8192];
    api_res_t r;
    (void)state;

    assert_int_equal(uc_test_redis_start(&redis, NULL), 0);
    fmt(url, sizeof(url), "REDIS_URL=redis://127.0.0.1:%d/0", redis.port);
    /* No refills: the miss after the write is what shows its
     * invalidation in the counters below. */
    const char *env[] = {
        url, "UTXOCACHE_KEY_PREFIX=ops-test:", "UTXOCACHE_REFILL_TOP=0", NULL};
    start_with_key(NULL, env);

    /* Traffic: a miss, a hit, a write, a 404 and a readiness check. */
    uniq(id, sizeof(id), "m");
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&a, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    api_free(&r);
    api_req(&a, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    api_free(&r);
    rate(&a, id, 200);
    api_req(&a, &r, "GET", "/nope", NULL, NULL, NULL);
    assert_status(&r, 404);
    api_free(&r);
    api_req(&a, &r, "GET", "/readyz", NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);

    char *text = scrape(&a);
    int st = promtool(&a, text, out, sizeof(out));
    if (st != 0 || out[0] != '\0') {
        fprintf(stderr, "promtool exit %d:\n%s\n", st, out);
    }
    assert_int_equal(st, 0);
    assert_string_equal(out, "");
    check_families(text);

    /* One more hit moves the keyspace's counter by one. */
    const char *hits = "utxoiq_cache_hits_total{keyspace=\"feedback_stats\"}";
    double before = sample(text, hits);
    assert_true(before >= 1);
    assert_true(sample(text, "utxoiq_cache_sets_total"
                             "{keyspace=\"feedback_stats\"}") >= 1);
    assert_true(sample(text, "utxoiq_redis_up") == 1);
    assert_true(sample(text, "utxoiq_database_writable") == 1);
    assert_true(sample(text, "process_open_fds") > 3);
    assert_true(sample(text, "process_resident_memory_bytes") > 1e6);
    assert_true(sample(text, "utxoiq_http_requests_total{route=\"unmatched\","
                             "status=\"404\"}") == 1);
    free(text);
    api_req(&a, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS"); /* the write invalidated it */
    api_free(&r);
    api_req(&a, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    api_free(&r);
    text = scrape(&a);
    assert_true(sample(text, hits) == before + 1);
    /* The histogram counts every Redis read: +Inf bucket and _count agree.
     * Each MISS read Redis; a HIT may have come from the near cache (no
     * Redis read), depending on when the fill's own invalidation arrived. */
    fmt(series, sizeof(series),
        "utxoiq_cache_get_duration_seconds_bucket{keyspace=\"feedback_stats\","
        "le=\"+Inf\"}");
    double inf = sample(text, series);
    assert_true(inf >= 2);
    assert_true(sample(text, "utxoiq_cache_get_duration_seconds_count"
                             "{keyspace=\"feedback_stats\"}") == inf);
    free(text);

    /* Every per-keyspace counter and pool figure of the JSON statistics is
     * in /metrics with the same value (nothing reads the cache between the
     * two answers). */
    api_req(&a, &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL, NULL);
    assert_status(&r, 200);
    text = scrape(&a);
    json_t *kss = jget(r.j, "keyspaces");
    const char *ks;
    json_t *o;
    size_t compared = 0;
    json_object_foreach(kss, ks, o)
    {
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
            if (!json_is_integer(v) || strcmp(k, "ttl_s") == 0 ||
                strcmp(k, "keys") == 0) {
                continue;
            }
            fmt(series, sizeof(series),
                "utxoiq_cache_%s_total{keyspace=\"%s\"}", k, ks);
            double m = sample(text, series);
            if (m != (double)json_integer_value(v)) {
                fprintf(stderr, "%s: metrics %g, JSON %lld\n", series, m,
                        (long long)json_integer_value(v));
            }
            assert_true(m == (double)json_integer_value(v));
            compared++;
        }
    }
    assert_true(compared >= 5 * 10);
    json_t *pool = jget(r.j, "pool");
    assert_true(sample(text, "utxoiq_cache_pool_max_connections") ==
                (double)jint(pool, "max"));
    assert_true(sample(text, "utxoiq_cache_pool_connects_total") ==
                (double)jint(pool, "connects"));
    assert_true(sample(text, "utxoiq_cache_pending_invalidations") ==
                (double)jint(jget(r.j, "invalidation_queue"), "pending"));
    assert_true(sample(text, "utxoiq_redis_memory_used_bytes") > 0);
    free(text);
    api_free(&r);

    uc_test_api_destroy(&a);
    uc_test_redis_stop(&redis);
}

/* ---- logs ---------------------------------------------------------------- */

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

/* Lines of the log from byte `from` on that are not access lines. */
static int log_lines_since(const uc_test_api_t *srv, long from, int print)
{
    FILE *f = fopen(srv->log, "r");
    char line[4096];
    int n = 0;
    assert_non_null(f);
    fseek(f, from, SEEK_SET);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "msg=request ") != NULL) {
            continue;
        }
        n++;
        if (print && n <= 12) {
            fprintf(stderr, "  %s", line);
        }
    }
    fclose(f);
    return n;
}

/* A burst of requests, each answered with `want`; adds the requests made
 * to *count and returns how long it took in ms, at least 1. */
static uint64_t burst(uc_test_api_t *srv, const char *method, int write,
                      long want, int *count)
{
    uint64_t t0 = uc_test_now_ms();
    int i = 0;
    for (; i < BURST_MAX; i++) {
        char id[64], path[128];
        if (i >= BURST_MIN && uc_test_now_ms() - t0 >= BURST_MS) {
            break;
        }
        uniq(id, sizeof(id), "b");
        if (write) {
            rate(srv, id, want);
            continue;
        }
        api_res_t r;
        fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
        api_req(srv, &r, method, path, NULL, NULL, NULL);
        assert_status(&r, want);
        api_free(&r);
    }
    *count += i;
    uint64_t ms = uc_test_now_ms() - t0;
    return ms > 0 ? ms : 1;
}

static void check_burst_lines(const char *what, const uc_test_api_t *srv,
                              long from, uint64_t ms, int requests)
{
    int lines = log_lines_since(srv, from, 0);
    int bound = LINES_PER_S * (int)((ms + 999) / 1000) + LINES_SLACK;
    printf("FIGURE log_lines %s: %d lines for %d requests in %llu ms "
           "(bound %d)\n",
           what, lines, requests, (unsigned long long)ms, bound);
    if (lines > bound) {
        log_lines_since(srv, from, 1);
    }
    assert_true(lines <= bound);
}

/* Redis refuses connections: every write commits, and its invalidation is
 * queued; the log says so a few times, not twice per write. */
static void test_log_redis_down(void **state)
{
    char url[64];
    (void)state;
    fmt(url, sizeof(url), "REDIS_URL=redis://127.0.0.1:%d/0",
        uc_test_free_port());
    const char *env[] = {url, "REDIS_CONNECT_TIMEOUT_MS=100",
                         "REDIS_COMMAND_TIMEOUT_MS=100", NULL};
    start_with_key(NULL, env);
    long from = file_size(a.log);
    int n = 0;
    uint64_t ms = burst(&a, "POST", 1, 200, &n);
    ms += burst(&a, "GET", 0, 200, &n);
    check_burst_lines("redis down (writes, then reads)", &a, from, ms, n);
    uc_test_api_destroy(&a);
}

/* PostgreSQL stopped under the service: every request answers 503 and the
 * log does not grow by a line or two per request. */
static void test_log_pg_down(void **state)
{
    (void)state;
    if (!uc_test_pg_available()) {
        skip();
    }
    assert_int_equal(uc_test_pg_start(&pg), 0);
    const char *env[] = {"UTXOIQ_DB_TIMEOUT_MS=500", NULL};
    start_with_key(pg.url, env);
    rate(&a, "pg-up", 200);
    assert_int_equal(uc_test_pg_down(&pg), 0);
    long from = file_size(a.log);
    int n = 0;
    uint64_t ms = burst(&a, "GET", 0, 503, &n);
    ms += burst(&a, "POST", 1, 503, &n);
    check_burst_lines("postgresql down (reads, then writes)", &a, from, ms, n);
    /* What was held back is counted. */
    char *text = scrape(&a);
    assert_true(sample(text, "utxoiq_log_lines_suppressed_total") > 0);
    free(text);
    uc_test_api_destroy(&a);
    uc_test_pg_stop(&pg);
}

/* JSON lines that parse, a password that never shows, and a threshold
 * that drops the access lines. */
static void test_log_json_and_level(void **state)
{
    char url[128], line[4096];
    (void)state;
    fmt(url, sizeof(url), "REDIS_URL=redis://app:hunter2-secret@127.0.0.1:%d/0",
        uc_test_free_port());
    const char *env[] = {url, "UTXOIQ_LOG_FORMAT=json",
                         "REDIS_CONNECT_TIMEOUT_MS=100", NULL};
    start_with_key(NULL, env);
    rate(&a, "json-b", 200);
    api_res_t r;
    api_req(&a, &r, "GET", "/api/v1/feedback/stats/json%0a%22x", NULL, NULL,
            NULL);
    api_free(&r);
    FILE *f = fopen(a.log, "r");
    assert_non_null(f);
    int lines = 0, access = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        if (j == NULL) {
            fprintf(stderr, "not JSON (%s): %s", err.text, line);
        }
        assert_non_null(j);
        assert_non_null(json_object_get(j, "ts"));
        assert_non_null(json_object_get(j, "level"));
        const char *msg = jstr(j, "msg");
        access += strcmp(msg, "request") == 0;
        json_decref(j);
        assert_null(strstr(line, "hunter2"));
        lines++;
    }
    fclose(f);
    assert_true(access >= 3);
    assert_true(lines > access);

    /* warn: no access lines, no start-up info lines. */
    const char *env2[] = {url, "UTXOIQ_LOG_LEVEL=warn",
                          "REDIS_CONNECT_TIMEOUT_MS=100", NULL};
    long from = file_size(a.log);
    assert_int_equal(uc_test_api_restart(&a, env2), 0);
    rate(&a, "json-c", 200);
    f = fopen(a.log, "r");
    assert_non_null(f);
    fseek(f, from, SEEK_SET);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "level=info") != NULL) {
            fprintf(stderr, "info line at level warn: %s", line);
        }
        assert_null(strstr(line, "level=info"));
        assert_null(strstr(line, "hunter2"));
    }
    fclose(f);
    uc_test_api_destroy(&a);
}

/* ---- readiness when the database cannot write ---------------------------- */

/* Polls /readyz (bounded) until it answers want; returns the ms it took,
 * and leaves the last answer in r. */
static uint64_t ready_wait(uc_test_api_t *srv, long want, api_res_t *r)
{
    uint64_t t0 = uc_test_now_ms();
    for (;;) {
        api_req(srv, r, "GET", "/readyz", NULL, NULL, NULL);
        if (r->h.status == want || uc_test_now_ms() - t0 > 10000) {
            break;
        }
        api_free(r);
        uc_test_sleep_ms(50);
    }
    assert_status(r, want);
    return uc_test_now_ms() - t0;
}

static void assert_cannot_write(api_res_t *r, const char *backend)
{
    assert_non_null(r->j);
    json_t *db = jget(r->j, "database");
    assert_string_equal(jstr(db, "backend"), backend);
    assert_true(json_is_false(jget(db, "writable")));
    assert_string_equal(jstr(db, "status"), "database cannot write");
    assert_non_null(strstr(jstr(r->j, "detail"), backend));
}

/* The SQLite file deleted under the running service: SQLite would go on
 * committing into the unlinked file, so every write would answer 200 and
 * be gone at the next start. Writes answer 503 instead, and so does
 * /readyz; reads go on from the open file. */
static void test_ready_sqlite_deleted(void **state)
{
    api_res_t r;
    (void)state;
    char path[1100];
    start_with_key(NULL, NULL);
    assert_int_equal(strncmp(a.db_url, "sqlite:", 7), 0);
    snprintf(path, sizeof(path), "%.1000s", a.db_url + 7);
    rate(&a, "sq-1", 200);
    ready_wait(&a, 200, &r);
    api_free(&r);

    assert_int_equal(unlink(path), 0);
    uint64_t t0 = uc_test_now_ms();
    char body[128];
    fmt(body, sizeof(body), "{\"insight_id\":\"sq-2\",\"rating\":3}");
    api_req(&a, &r, "POST", "/api/v1/feedback/rate", user_key, body, NULL);
    assert_status(&r, 503);
    assert_non_null(strstr(jstr(r.j, "detail"), "cannot write"));
    api_free(&r);
    uint64_t ms = ready_wait(&a, 503, &r);
    assert_cannot_write(&r, "sqlite");
    api_free(&r);
    printf("FIGURE readiness sqlite deleted: write 503 at once, /readyz 503 "
           "after %llu ms (probe at most once a second)\n",
           (unsigned long long)(uc_test_now_ms() - t0 > ms
                                    ? uc_test_now_ms() - t0
                                    : ms));
    /* Reads are still served from the open file. */
    api_req(&a, &r, "GET", "/api/v1/feedback/stats/sq-1", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "total_ratings"), 1);
    api_free(&r);
    char *text = scrape(&a);
    assert_true(sample(text, "utxoiq_database_writable") == 0);
    free(text);
    uc_test_api_destroy(&a);
}

/* PostgreSQL set read-only (as a standby or an operator would make it):
 * writes answer 503, /readyz names the database, and both recover without
 * a restart once it takes writes again. */
static void test_ready_pg_readonly(void **state)
{
    api_res_t r;
    char sql[512];
    (void)state;
    if (!uc_test_pg_available()) {
        skip();
    }
    assert_int_equal(uc_test_pg_start(&pg), 0);
    start_with_key(pg.url, NULL);
    rate(&a, "pg-1", 200);
    ready_wait(&a, 200, &r);
    api_free(&r);

    fmt(sql, sizeof(sql),
        "ALTER DATABASE %s SET default_transaction_read_only = on;"
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = '%s' AND pid <> pg_backend_pid();",
        pg.dbname, pg.dbname);
    assert_int_equal(uc_test_pg_psql(&pg, sql, NULL, 0), 0);
    uint64_t t0 = uc_test_now_ms();
    /* The first call may meet a terminated connection (503 unavailable);
     * from then on it is 503 "cannot write". */
    char body[128];
    fmt(body, sizeof(body), "{\"insight_id\":\"pg-2\",\"rating\":3}");
    int cannot = 0;
    for (int i = 0; i < 20 && !cannot; i++) {
        api_req(&a, &r, "POST", "/api/v1/feedback/rate", user_key, body, NULL);
        assert_status(&r, 503);
        cannot = strstr(jstr(r.j, "detail"), "cannot write") != NULL;
        api_free(&r);
    }
    assert_true(cannot);
    uint64_t ms = ready_wait(&a, 503, &r);
    assert_cannot_write(&r, "postgresql");
    api_free(&r);
    printf("FIGURE readiness postgresql read-only: writes 503 at once, "
           "/readyz 503 after %llu ms\n",
           (unsigned long long)(uc_test_now_ms() - t0));
    (void)ms;

    fmt(sql, sizeof(sql),
        "BEGIN READ WRITE;"
        "ALTER DATABASE %s RESET default_transaction_read_only;"
        "COMMIT;",
        pg.dbname);
    assert_int_equal(uc_test_pg_psql(&pg, sql, NULL, 0), 0);
    ms = ready_wait(&a, 200, &r);
    api_free(&r);
    printf("FIGURE readiness postgresql writable again: /readyz 200 after "
           "%llu ms, no restart\n",
           (unsigned long long)ms);
    rate(&a, "pg-2", 200);
    api_req(&a, &r, "GET", "/api/v1/feedback/stats/pg-2", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "total_ratings"), 1);
    api_free(&r);
    uc_test_api_destroy(&a);
    uc_test_pg_stop(&pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_promtool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_pg_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_json_and_level, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ready_sqlite_deleted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ready_pg_readonly, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
