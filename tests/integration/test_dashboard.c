/* SPDX-License-Identifier: MIT */
/*
 * The cache dashboard in a real browser: utxoiq-api on a redis-server of
 * the test's own, some reads and writes so that every figure is non-zero,
 * then /dashboard in headless Chromium (Debian's, driven by playwright-core
 * through tests/browser/dashboard.mjs). With the traffic stopped, the
 * numbers the page shows (hit rate, hits, misses, the queries and database
 * time saved) must equal what /api/v1/monitoring/cache/stats and
 * /cache/history answer at the same time; the page must request nothing
 * but the service on 127.0.0.1 and log no error (a CSP violation would be
 * one). The screenshot is left in the build tree and its path printed.
 * Also the history's JSON shape and the files' headers (type, ETag and 304,
 * Content-Security-Policy). Without chromium, node or npm the test fails,
 * or skips under UC_TEST_ALLOW_SKIP=1.
 */
#include "api_test.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "redis_server.h"
#include "util.h"

#define N_INSIGHTS 6

static uc_test_api_t api;
static uc_test_redis_t redis;
static char user_key[128];
static char admin_key[128];

static const char *chromium_path(void)
{
    const char *c = getenv("UC_TEST_CHROMIUM");
    return c != NULL && c[0] != '\0' ? c : "/usr/bin/chromium";
}

/* Is prog an executable on PATH? */
static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[1024];

    while (path != NULL && *path != '\0') {
        const char *end = strchr(path, ':');
        size_t n = end != NULL ? (size_t)(end - path) : strlen(path);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0) {
            return 1;
        }
        path = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

/* Skips (UC_TEST_ALLOW_SKIP=1) or fails when a tool is missing. */
static void need_tools(void)
{
    const char *allow = getenv("UC_TEST_ALLOW_SKIP");
    char why[256] = "";

    if (access(chromium_path(), X_OK) != 0) {
        snprintf(why, sizeof(why),
                 "'%s' is not installed (apt-get install chromium, or "
                 "scripts/install-deps)",
                 chromium_path());
    } else if (!on_path("node") || !on_path("npm")) {
        snprintf(why, sizeof(why),
                 "node and npm are needed (apt-get install "
                 "nodejs npm, or scripts/install-deps)");
    }
    if (why[0] == '\0') {
        return;
    }
    if (allow != NULL && strcmp(allow, "1") == 0) {
        print_message("skipped: %s\n", why);
        skip();
    }
    fail_msg("%s (UC_TEST_ALLOW_SKIP=1 skips)", why);
}

/*
 * Runs argv in its own process group with stdout to out_path (NULL: the
 * test's), waiting at most timeout_ms; past that the group is killed.
 * Returns the exit status, or -1 when it was killed or did not exit.
 */
static int run(char *const argv[], const char *out_path, unsigned timeout_ms)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        if (out_path != NULL) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dup2(fd, 1) < 0) {
                _exit(126);
            }
            close(fd);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    setpgid(pid, pid);
    uint64_t deadline = uc_test_now_ms() + timeout_ms;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        if (uc_test_now_ms() > deadline) {
            fprintf(stderr, "'%s' still running after %u ms: killed\n", argv[0],
                    timeout_ms);
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        uc_test_sleep_ms(50);
    }
}

static int group_setup(void **state)
{
    static char redis_url[64];
    (void)state;
    if (uc_test_redis_start(&redis, NULL) != 0) {
        return -1;
    }
    snprintf(redis_url, sizeof(redis_url), "REDIS_URL=redis://127.0.0.1:%d/0",
             redis.port);
    /* One sample a second, so a short run has a few points to draw. */
    const char *env[] = {redis_url, "UTXOIQ_HISTORY_INTERVAL_S=1",
                         "UTXOCACHE_KEY_PREFIX=utxoiq-dash:", NULL};
    if (uc_test_api_start(&api, NULL, env) != 0) {
        return -1;
    }
    const uc_test_api_user_t users[] = {
        {"alice", "user", user_key, sizeof(user_key)},
        {"admin", "admin", admin_key, sizeof(admin_key)},
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

static void get_ok(const char *path)
{
    api_res_t r;
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);
}

/* Reads and writes through two keyspaces: misses, hits (near and Redis),
 * loads, invalidations. */
static void traffic(void)
{
    char ids[N_INSIGHTS][64], path[256], body[256], job[64];
    api_res_t r;

    for (int i = 0; i < N_INSIGHTS; i++) {
        uniq(ids[i], sizeof(ids[i]), "dash");
    }
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N_INSIGHTS; i++) {
            fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", ids[i]);
            get_ok(path);
        }
        /* Spread over a few samples, so that the charts draw lines. */
        uc_test_sleep_ms(600);
        if (round == 2) {
            for (int i = 0; i < 2; i++) {
                fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":%d}",
                    ids[i], 4 + i);
                api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key,
                        body, NULL);
                assert_status(&r, 200);
                api_free(&r);
            }
        }
    }
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/start", admin_key,
            "{\"job_type\":\"blocks\",\"start_block\":0,\"end_block\":10}",
            NULL);
    assert_status(&r, 200);
    snprintf(job, sizeof(job), "%s", jstr(r.j, "id"));
    api_free(&r);
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/%s", job);
    for (int i = 0; i < 4; i++) {
        get_ok(path);
    }
}

/* The files' headers: type, strong ETag answered 304, CSP of 'self'. */
static void test_dashboard_files(void **state)
{
    static const struct {
        const char *path;
        const char *type;
    } files[] = {
        {"/dashboard", "text/html; charset=utf-8"},
        {"/dashboard/dashboard.js", "text/javascript; charset=utf-8"},
        {"/dashboard/dashboard.css", "text/css; charset=utf-8"},
        {"/dashboard/uPlot.iife.min.js", "text/javascript; charset=utf-8"},
        {"/dashboard/uPlot.min.css", "text/css; charset=utf-8"},
        {"/dashboard/favicon.svg", "image/svg+xml"},
    };
    api_res_t r;
    char inm[128];
    (void)state;

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        api_req(&api, &r, "GET", files[i].path, NULL, NULL, NULL);
        assert_status(&r, 200);
        assert_string_equal(r.h.content_type, files[i].type);
        assert_string_equal(r.h.cache_control, "no-cache");
        assert_true(r.h.len > 0);
        assert_true(strlen(r.h.etag) > 2 && r.h.etag[0] == '"');
        fmt(inm, sizeof(inm), "If-None-Match: %s", r.h.etag);
        api_free(&r);
        api_req(&api, &r, "GET", files[i].path, NULL, NULL, inm);
        assert_status(&r, 304);
        api_free(&r);
    }
    api_req(&api, &r, "GET", "/dashboard/no-such-file.js", NULL, NULL, NULL);
    assert_status(&r, 404);
    api_free(&r);
}

/* The history's shape: equal-length columns, time ascending, bounded. */
static void test_history_shape(void **state)
{
    api_res_t r;
    (void)state;

    uc_test_sleep_ms(1200);
    api_req(&api, &r, "GET", "/api/v1/monitoring/cache/history", NULL, NULL,
            NULL);
    assert_status(&r, 200);
    long long n = jint(r.j, "samples");
    assert_true(n >= 2);
    assert_int_equal(jint(r.j, "interval_s"), 1);
    assert_int_equal(jint(r.j, "capacity"), 720);
    assert_true(jint(r.j, "memory_bytes") > 0);
    assert_true(n <= jint(r.j, "capacity") + 1);
    json_t *t = jget(r.j, "t_ms");
    assert_int_equal(json_array_size(t), n);
    for (size_t i = 1; i < (size_t)n; i++) {
        assert_true(json_integer_value(json_array_get(t, i)) >=
                    json_integer_value(json_array_get(t, i - 1)));
    }
    const char *groups[] = {"near", "latency", "pool", "redis"};
    json_t *cols = jget(r.j, "totals");
    const char *k;
    json_t *v;
    json_object_foreach(cols, k, v)
    {
        assert_int_equal(json_array_size(v), n);
    }
    json_t *kss = jget(r.j, "keyspaces");
    assert_int_equal(json_object_size(kss), 8);
    json_t *ks;
    json_object_foreach(kss, k, ks)
    {
        json_t *c;
        const char *f;
        json_object_foreach(ks, f, c)
        {
            assert_int_equal(json_array_size(c), n);
        }
    }
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        json_object_foreach(jget(r.j, groups[g]), k, v)
        {
            if (json_is_array(v)) {
                assert_int_equal(json_array_size(v), n);
            }
        }
    }
    assert_true(json_is_object(jget(r.j, "hot")));
    api_free(&r);
}

static long long last_int(json_t *cols, const char *name)
{
    json_t *a = jget(cols, name);
    return (long long)json_integer_value(
        json_array_get(a, json_array_size(a) - 1));
}

static long long first_int(json_t *cols, const char *name)
{
    return (long long)json_integer_value(json_array_get(jget(cols, name), 0));
}

static void test_dashboard_in_browser(void **state)
{
    char bin[600], script[700], shot[700], out[700], base[64], prefix[80];
    api_res_t st, hist;
    (void)state;

    need_tools();
    snprintf(bin, sizeof(bin), "%s", UC_BROWSER_BIN);
    char *setup[] = {"sh", UC_BROWSER_SRC "/npm-ci.sh", UC_BROWSER_SRC, bin,
                     NULL};
    if (run(setup, NULL, 300000) != 0) {
        fail_msg("npm ci of tests/browser failed (the npm registry must be "
                 "reachable once; the packages are kept in %s)",
                 bin);
    }
    mkdir(UC_ARTIFACT_DIR, 0755);
    fmt(script, sizeof(script), "%s/dashboard.mjs", bin);
    fmt(shot, sizeof(shot), "%s/dashboard.png", UC_ARTIFACT_DIR);
    fmt(out, sizeof(out), "%s/dashboard.json", UC_ARTIFACT_DIR);
    fmt(base, sizeof(base), "http://127.0.0.1:%d", api.port);
    unlink(shot);

    traffic();
    /* A sample or two after the traffic; the figures are stable from here
     * on, as nothing else reads the cache. */
    uc_test_sleep_ms(1500);

    char *node[] = {"node", script, base, shot, NULL};
    int rc = run(node, out, 120000);
    json_error_t jerr;
    json_t *page = json_load_file(out, 0, &jerr);
    if (page == NULL) {
        fail_msg("no JSON from dashboard.mjs (exit %d): %s", rc, jerr.text);
    }
    assert_int_equal(rc, 0);

    /* Fetched after the page read its figures; no traffic in between. */
    api_req(&api, &st, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL,
            NULL);
    assert_status(&st, 200);
    api_req(&api, &hist, "GET", "/api/v1/monitoring/cache/history", NULL, NULL,
            NULL);
    assert_status(&hist, 200);

    json_t *vals = jget(page, "values");
    json_t *tot = jget(st.j, "totals");
    long long hits = jint(tot, "hits"), misses = jint(tot, "misses");
    print_message("page: %s\n", json_string_value(jget(vals, "benefit")));
    assert_true(hits > 0);
    assert_true(misses > 0);
    assert_int_equal((long long)jnum(vals, "hits"), hits);
    assert_int_equal((long long)jnum(vals, "misses"), misses);
    assert_true(fabs(jnum(vals, "hit_rate") - jnum(tot, "hit_rate")) < 1e-9);

    /* The cost/benefit, recomputed the way docs/dashboard.md says: hits in
     * the window per keyspace, times that keyspace's mean loader time. */
    json_t *hks = jget(hist.j, "keyspaces");
    json_t *sks = jget(st.j, "keyspaces");
    const char *name;
    json_t *cols;
    long long saved = 0;
    double saved_us = 0;
    json_object_foreach(hks, name, cols)
    {
        long long h = jint(jget(sks, name), "hits") - first_int(cols, "hits");
        long long calls = last_int(cols, "loader_calls");
        saved += h;
        if (calls > 0) {
            saved_us +=
                (double)h * (double)last_int(cols, "loader_us") / (double)calls;
        }
    }
    assert_true(saved > 0);
    assert_true(saved_us > 0);
    assert_int_equal((long long)jnum(vals, "saved_queries"), saved);
    double page_s = jnum(vals, "saved_time_s");
    if (fabs(page_s - saved_us / 1e6) > 1e-9 + 1e-6 * saved_us / 1e6) {
        fail_msg("page says %.9f s of database time saved, the history %.9f",
                 page_s, saved_us / 1e6);
    }

    /* Every chart drew; the hot entries are listed. */
    assert_true(jnum(vals, "charts") >= 11);
    assert_true(jnum(vals, "hot_rows") >= 1);

    /* Nothing but the service on 127.0.0.1, and no error in the console. */
    json_t *off = jget(page, "offsite");
    size_t i;
    json_t *u;
    json_array_foreach(off, i, u)
    {
        fprintf(stderr, "request off the machine: %s\n", json_string_value(u));
    }
    assert_int_equal(json_array_size(off), 0);
    fmt(prefix, sizeof(prefix), "%s/", base);
    json_array_foreach(jget(page, "requests"), i, u)
    {
        if (strncmp(json_string_value(u), prefix, strlen(prefix)) != 0) {
            fail_msg("request not to the service: %s", json_string_value(u));
        }
    }
    assert_true(json_array_size(jget(page, "requests")) >= 6);
    json_array_foreach(jget(page, "console_errors"), i, u)
    {
        fprintf(stderr, "console: %s\n", json_string_value(u));
    }
    assert_int_equal(json_array_size(jget(page, "console_errors")), 0);

    /* The page's own headers as the browser saw them. */
    json_t *hdr = jget(page, "headers");
    const char *csp = json_string_value(jget(hdr, "content-security-policy"));
    assert_non_null(strstr(csp, "default-src 'self'"));
    assert_null(strstr(csp, "http"));
    assert_null(strstr(csp, "*"));
    assert_null(strstr(csp, "unsafe"));
    assert_string_equal(json_string_value(jget(hdr, "content-type")),
                        "text/html; charset=utf-8");

    struct stat sb;
    assert_int_equal(stat(shot, &sb), 0);
    assert_true(sb.st_size > 10000);
    print_message("screenshot: %s\n", shot);

    api_free(&st);
    api_free(&hist);
    json_decref(page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard_files),
        cmocka_unit_test(test_history_shape),
        cmocka_unit_test(test_dashboard_in_browser),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
