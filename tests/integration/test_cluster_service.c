/* SPDX-License-Identifier: MIT */
/*
 * utxoiq-api and the utxocache command line on a real six-node Redis
 * Cluster of the test's own (tests/support/redis_cluster.h), configured as
 * an operator would: REDIS_URL naming one node, REDIS_CLUSTER_NODES the
 * others. Checks that:
 *   - cached reads of insights whose keys land on every primary are a MISS
 *     and then a HIT, and each primary holds some of them;
 *   - the cache statistics say mode "cluster", list the six nodes, three of
 *     them primaries whose slots add up to 16384, each with commands that
 *     grew with the reads;
 *   - /metrics has the per-node families with the three primaries, the
 *     cluster gauge and the topology counters, each family once;
 *   - `utxocache stats` prints the three primaries in its node table (and
 *     the same in --json), and `utxocache keys` lists the keys of every
 *     primary;
 *   - a service on a standalone Redis shows one node (primary, 16384
 *     slots, no cluster id), and one on the memory backend mode "none" and
 *     no node.
 *
 * Without redis-server 7.0+ and redis-cli each test fails, or skips when
 * UC_TEST_ALLOW_SKIP=1 (scripts/ctest-verdict then still reports it).
 */
#include "api_test.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <hiredis/hiredis.h>

#include "redis_cluster.h"
#include "redis_server.h"
#include "util.h"

#ifndef UC_CLI_PATH
#error "UC_CLI_PATH must name the utxocache binary"
#endif

#define PREFIX "utxoiq-test:"
/* Insights read until every primary holds one of their entries; with
 * three primaries a handful is almost always enough. */
#define INSIGHTS_MIN 6
#define INSIGHTS_MAX 64
#define CLI_OUT_MAX (64 * 1024)

static uc_test_cluster_t *cl;
static uc_test_api_t api;
static char user_key[128];
static char url_env[64];
static char seeds_env[256];
static int skipping; /* the cluster cannot run here and skips are allowed */
static char insights[INSIGHTS_MAX][64];
static size_t ninsights;

static int group_setup(void **state)
{
    char why[256] = "";
    const char *allow = getenv("UC_TEST_ALLOW_SKIP");
    size_t k = 0;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (!uc_test_cluster_available(why, sizeof(why))) {
        fprintf(stderr, "%s (UC_TEST_ALLOW_SKIP=1 skips)\n", why);
        skipping = allow != NULL && strcmp(allow, "1") == 0;
        return skipping ? 0 : -1;
    }
    cl = calloc(1, sizeof(*cl));
    if (cl == NULL || uc_test_cluster_start(cl) != 0) {
        return -1;
    }
    snprintf(url_env, sizeof(url_env), "REDIS_URL=redis://127.0.0.1:%d",
             cl->node[0].port);
    k = (size_t)snprintf(seeds_env, sizeof(seeds_env), "REDIS_CLUSTER_NODES=");
    for (int i = 1; i < UC_TEST_CLUSTER_NODES && k < sizeof(seeds_env); i++) {
        k += (size_t)snprintf(seeds_env + k, sizeof(seeds_env) - k,
                              "%s127.0.0.1:%d", i == 1 ? "" : ",",
                              cl->node[i].port);
    }
    const char *env[] = {url_env, seeds_env, "UTXOCACHE_KEY_PREFIX=" PREFIX,
                         NULL};
    if (uc_test_api_start(&api, NULL, env) != 0) {
        return -1;
    }
    const uc_test_api_user_t users[] = {
        {"alice", "user", user_key, sizeof(user_key)},
    };
    return uc_test_api_keys(&api, users, 1);
}

static int group_teardown(void **state)
{
    (void)state;
    uc_test_api_destroy(&api);
    if (cl != NULL) {
        uc_test_cluster_stop(cl);
        free(cl);
        cl = NULL;
    }
    return 0;
}

static void skip_if_unavailable(void)
{
    if (skipping) {
        print_message("skipped: no Redis Cluster here\n");
        skip();
    }
}

/* ---- helpers ------------------------------------------------------------- */

/* The fixture's primaries: is_primary[i] for node i; returns how many. */
static int fixture_primaries(int is_primary[UC_TEST_CLUSTER_NODES])
{
    int n = 0;

    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        int p = uc_test_cluster_is_primary(cl, i);
        assert_true(p >= 0);
        is_primary[i] = p;
        n += p;
    }
    return n;
}

/* Feedback-stats entries of the service on node i (SCAN). */
static long feedback_keys_on(int i)
{
    redisContext *rc = uc_test_cluster_connect(cl, i);
    char cursor[32] = "0";
    long n = 0;

    assert_non_null(rc);
    do {
        redisReply *r = redisCommand(
            rc, "SCAN %s MATCH " PREFIX "feedback:stats:* COUNT 1000", cursor);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        n += (long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(rc);
    return n;
}

/* "127.0.0.1:<port of node i>". */
static void node_addr(int i, char *buf, size_t cap)
{
    snprintf(buf, cap, "127.0.0.1:%d", cl->node[i].port);
}

/* The stats' node object whose addr is addr, or NULL. */
static json_t *node_by_addr(json_t *nodes, const char *addr)
{
    size_t i;
    json_t *o;

    json_array_foreach(nodes, i, o)
    {
        if (strcmp(jstr(o, "addr"), addr) == 0) {
            return o;
        }
    }
    return NULL;
}

/* GET of the cache statistics; the caller api_free()s r. */
static json_t *cache_stats(uc_test_api_t *a, api_res_t *r)
{
    api_req(a, r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL, NULL);
    assert_status(r, 200);
    assert_non_null(r->j);
    return jget(r->j, "topology");
}

/* One GET of an insight's stats; returns its X-Cache in xc. */
static void read_insight(const char *id, char *xc, size_t cap)
{
    char path[256];
    api_res_t r;

    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "total_ratings"), 1);
    snprintf(xc, cap, "%s", r.h.x_cache);
    api_free(&r);
}

/* The value of the one sample `series` (name and labels, exactly) in an
 * exposition; fails the test when it is absent or there twice. */
static double sample(const char *text, const char *series)
{
    size_t sl = strlen(series);
    const char *found = NULL;

    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, series, sl) == 0 && p[sl] == ' ') {
            if (found != NULL) {
                fail_msg("series '%s' twice", series);
            }
            found = p + sl + 1;
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    if (found == NULL) {
        fail_msg("no series '%s' in /metrics", series);
    }
    return strtod(found, NULL);
}

/* Lines of text that start with prefix and contain needle (NULL: any). */
static int count_lines(const char *text, const char *prefix, const char *needle)
{
    size_t pl = strlen(prefix);
    int n = 0;

    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (len >= pl && strncmp(p, prefix, pl) == 0) {
            if (needle == NULL) {
                n++;
            } else {
                const char *q = strstr(p, needle);
                n += q != NULL && q < p + len;
            }
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return n;
}

/* What one run of the CLI produced. */
typedef struct {
    int status; /* exit status, or -1 if it did not exit normally */
    char out[CLI_OUT_MAX];
    size_t outlen;
} cli_run_t;

static cli_run_t g_run;

/*
 * Runs the CLI with the cluster's environment and the NULL-terminated
 * arguments; stderr goes to the test's. Bounded: a run longer than 10 s is
 * killed and fails the test.
 */
static void run_cli(cli_run_t *r, ...)
{
    char *argv[8];
    size_t argc = 1;
    int pout[2];
    uint64_t deadline = uc_test_now_ms() + 10000;
    va_list ap;
    pid_t pid;
    int st = 0;

    memset(r, 0, sizeof(*r));
    argv[0] = "utxocache";
    va_start(ap, r);
    for (char *a = va_arg(ap, char *); a != NULL; a = va_arg(ap, char *)) {
        assert_true(argc < 7);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    assert_int_equal(pipe(pout), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pout[1], 1);
        close(pout[0]);
        close(pout[1]);
        unsetenv("REDIS_HOST");
        unsetenv("REDIS_PORT");
        unsetenv("REDIS_PASSWORD");
        unsetenv("UTXOCACHE_BACKEND");
        putenv(url_env);
        putenv(seeds_env);
        putenv((char *)"UTXOCACHE_KEY_PREFIX=" PREFIX);
        execv(UC_CLI_PATH, argv);
        _exit(127);
    }
    close(pout[1]);
    for (;;) {
        struct pollfd pfd = {.fd = pout[0], .events = POLLIN};
        uint64_t now = uc_test_now_ms();
        char tmp[4096];
        ssize_t n;

        if (now >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            close(pout[0]);
            fail_msg("utxocache %s did not finish within 10 s", argv[1]);
        }
        if (poll(&pfd, 1, (int)(deadline - now)) < 0 && errno != EINTR) {
            break;
        }
        if (pfd.revents == 0) {
            continue;
        }
        n = read(pout[0], tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (r->outlen + (size_t)n < sizeof(r->out)) {
            memcpy(r->out + r->outlen, tmp, (size_t)n);
            r->outlen += (size_t)n;
            r->out[r->outlen] = '\0';
        }
    }
    close(pout[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- the tests ----------------------------------------------------------- */

/*
 * Insights are rated (so that their stats come from the database), read
 * twice, MISS then HIT, until every primary holds some of their entries;
 * each primary's commands grew meanwhile.
 */
static void test_cached_reads_on_every_primary(void **state)
{
    int is_primary[UC_TEST_CLUSTER_NODES];
    long before[UC_TEST_CLUSTER_NODES] = {0};
    api_res_t r;
    int covered = 0;
    (void)state;

    skip_if_unavailable();
    assert_int_equal(fixture_primaries(is_primary), 3);
    json_t *topo = cache_stats(&api, &r);
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        char addr[32];
        node_addr(i, addr, sizeof(addr));
        json_t *o = node_by_addr(jget(topo, "nodes"), addr);
        before[i] = o != NULL ? (long)jint(o, "commands") : 0;
    }
    api_free(&r);

    while (ninsights < INSIGHTS_MAX && (ninsights < INSIGHTS_MIN || !covered)) {
        char body[256], xc[16];
        char *id = insights[ninsights++];

        uniq(id, 64, "cl");
        fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":4}", id);
        api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, body,
                NULL);
        assert_status(&r, 200);
        api_free(&r);
        read_insight(id, xc, sizeof(xc));
        assert_string_equal(xc, "MISS");
        read_insight(id, xc, sizeof(xc));
        assert_string_equal(xc, "HIT");
        covered = 1;
        for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
            if (is_primary[i] && feedback_keys_on(i) == 0) {
                covered = 0;
            }
        }
    }
    assert_true(covered);
    print_message("%zu insights put entries on all 3 primaries\n", ninsights);

    topo = cache_stats(&api, &r);
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        char addr[32];
        node_addr(i, addr, sizeof(addr));
        json_t *o = node_by_addr(jget(topo, "nodes"), addr);
        if (o == NULL) {
            fail_msg("node %s missing from the statistics", addr);
        }
        if (is_primary[i]) {
            assert_true(jint(o, "commands") > before[i]);
        }
    }
    api_free(&r);
}

/* The statistics' topology: mode, six nodes, three primaries that are the
 * fixture's and serve all slots, replicas with none. */
static void test_stats_json(void **state)
{
    int is_primary[UC_TEST_CLUSTER_NODES];
    api_res_t r;
    long long slots = 0;
    int primaries = 0, replicas = 0;
    size_t i;
    json_t *o;
    (void)state;

    skip_if_unavailable();
    assert_int_equal(fixture_primaries(is_primary), 3);
    json_t *topo = cache_stats(&api, &r);
    assert_string_equal(jstr(topo, "mode"), "cluster");
    assert_true(jint(topo, "refreshes") >= 1);
    assert_int_equal(jint(topo, "unrouted"), 0);
    jint(topo, "refresh_failures");
    jint(topo, "failovers");
    jint(topo, "slot_moves");
    json_t *nodes = jget(topo, "nodes");
    assert_int_equal(json_array_size(nodes), UC_TEST_CLUSTER_NODES);
    json_array_foreach(nodes, i, o)
    {
        const char *role = jstr(o, "role");
        const char *addr = jstr(o, "addr");
        int idx = uc_test_cluster_node_of_port(
            cl, (int)strtol(strrchr(addr, ':') + 1, NULL, 10));

        assert_true(idx >= 0);
        assert_int_equal(strlen(jstr(o, "id")), 40);
        assert_true(json_is_boolean(jget(o, "trusted")));
        jint(o, "failures");
        jint(o, "moved");
        jint(o, "ask");
        jint(o, "tryagain");
        jint(o, "distrusts");
        jint(o, "in_use");
        jint(o, "idle");
        jint(o, "connect_failures");
        if (strcmp(role, "primary") == 0) {
            assert_true(is_primary[idx]);
            /* Primaries come first. */
            assert_int_equal(replicas, 0);
            primaries++;
            slots += jint(o, "slots");
            assert_true(jint(o, "slots") > 0);
            assert_true(jint(o, "commands") > 0);
            assert_true(jint(o, "connects") >= 1);
            assert_true(json_is_true(jget(o, "trusted")));
            assert_string_equal(jstr(o, "breaker"), "closed");
        } else {
            assert_string_equal(role, "replica");
            assert_false(is_primary[idx]);
            assert_int_equal(jint(o, "slots"), 0);
            replicas++;
        }
    }
    assert_int_equal(primaries, 3);
    assert_int_equal(replicas, 3);
    assert_int_equal(slots, UC_TEST_CLUSTER_SLOTS);
    /* The existing Redis object stays: INFO summed over the primaries. */
    json_t *rd = jget(r.j, "redis");
    assert_true(json_is_object(rd));
    assert_true(jint(rd, "keys") >= (long long)ninsights);
    api_free(&r);
}

static void test_metrics(void **state)
{
    int is_primary[UC_TEST_CLUSTER_NODES];
    api_res_t r;
    double slots = 0;
    (void)state;

    skip_if_unavailable();
    assert_int_equal(fixture_primaries(is_primary), 3);
    api_req(&api, &r, "GET", "/metrics", NULL, NULL, NULL);
    assert_status(&r, 200);
    const char *t = r.h.body;
    assert_true(sample(t, "utxoiq_cache_redis_cluster") == 1);
    assert_true(sample(t, "utxoiq_cache_redis_topology_refreshes_total") >= 1);
    sample(t, "utxoiq_cache_redis_topology_refresh_failures_total");
    sample(t, "utxoiq_cache_redis_topology_failovers_total");
    sample(t, "utxoiq_cache_redis_topology_slot_moves_total");
    static const char *const families[] = {
        "utxoiq_cache_redis_node_commands_total",
        "utxoiq_cache_redis_node_failures_total",
        "utxoiq_cache_redis_node_moved_total",
        "utxoiq_cache_redis_node_ask_total",
        "utxoiq_cache_redis_node_tryagain_total",
        "utxoiq_cache_redis_node_distrusts_total",
        "utxoiq_cache_redis_node_slots",
        "utxoiq_cache_redis_node_up",
        "utxoiq_cache_redis_node_trusted",
    };
    for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
        char head[128];
        fmt(head, sizeof(head), "# TYPE %s ", families[f]);
        assert_int_equal(count_lines(t, head, NULL), 1);
        fmt(head, sizeof(head), "%s{", families[f]);
        assert_int_equal(count_lines(t, head, "role=\"primary\""), 3);
        assert_int_equal(count_lines(t, head, NULL), UC_TEST_CLUSTER_NODES);
    }
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        char series[160];
        const char *role = is_primary[i] ? "primary" : "replica";
        fmt(series, sizeof(series),
            "utxoiq_cache_redis_node_slots{node=\"127.0.0.1:%d\",role=\"%s\"}",
            cl->node[i].port, role);
        slots += sample(t, series);
        if (is_primary[i]) {
            fmt(series, sizeof(series),
                "utxoiq_cache_redis_node_commands_total{node=\"127.0.0.1:%d\","
                "role=\"primary\"}",
                cl->node[i].port);
            assert_true(sample(t, series) > 0);
            fmt(series, sizeof(series),
                "utxoiq_cache_redis_node_up{node=\"127.0.0.1:%d\","
                "role=\"primary\"}",
                cl->node[i].port);
            assert_true(sample(t, series) == 1);
        }
    }
    assert_true(slots == UC_TEST_CLUSTER_SLOTS);
    api_free(&r);
}

/* The CLI, as an operator runs it against the same cluster. */
static void test_cli_stats_and_keys(void **state)
{
    int is_primary[UC_TEST_CLUSTER_NODES];
    cli_run_t *r = &g_run;
    int primaries = 0;
    size_t i;
    json_t *o;
    (void)state;

    skip_if_unavailable();
    assert_int_equal(fixture_primaries(is_primary), 3);
    run_cli(r, "stats", NULL);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "\nmode                     cluster\n"));
    assert_non_null(strstr(r->out, "\nnodes "));
    for (int k = 0; k < UC_TEST_CLUSTER_NODES; k++) {
        char line[64];
        fmt(line, sizeof(line), "\n  127.0.0.1:%-12d %s ", cl->node[k].port,
            is_primary[k] ? "primary" : "replica");
        if (strstr(r->out, line) == NULL) {
            fail_msg("no row '%s' in:\n%s", line + 1, r->out);
        }
    }
    assert_int_equal(count_lines(r->out, "  127.0.0.1:", " primary "), 3);

    run_cli(r, "stats", "--json", NULL);
    assert_int_equal(r->status, 0);
    json_t *j = json_loadb(r->out, r->outlen, 0, NULL);
    assert_non_null(j);
    assert_string_equal(jstr(j, "mode"), "cluster");
    json_array_foreach(jget(j, "nodes"), i, o)
    {
        if (strcmp(jstr(o, "role"), "primary") == 0) {
            primaries++;
            assert_true(jint(o, "slots") > 0);
            assert_true(jint(o, "commands") > 0);
        }
    }
    json_decref(j);
    assert_int_equal(primaries, 3);

    /* keys walks every primary: each insight read above is listed. */
    run_cli(r, "keys", "feedback:stats:cl-*", NULL);
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out, "feedback:stats:cl-", NULL),
                     (int)ninsights);
    for (size_t k = 0; k < ninsights; k++) {
        char line[96];
        fmt(line, sizeof(line), "feedback:stats:%s\n", insights[k]);
        assert_non_null(strstr(r->out, line));
    }
    /* And a key routed by the library is found wherever its slot is. */
    char key[96];
    fmt(key, sizeof(key), "feedback:stats:%s", insights[0]);
    run_cli(r, "exists", key, NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "1\n");
}

/* A service on a standalone Redis shows one node; on the memory backend,
 * none. */
static void test_standalone_and_memory(void **state)
{
    static char url[64];
    uc_test_redis_t redis;
    uc_test_api_t other;
    api_res_t r;
    (void)state;

    assert_int_equal(uc_test_redis_start(&redis, NULL), 0);
    snprintf(url, sizeof(url), "REDIS_URL=redis://127.0.0.1:%d/0", redis.port);
    const char *env[] = {url, NULL};
    memset(&other, 0, sizeof(other));
    assert_int_equal(uc_test_api_start(&other, NULL, env), 0);
    api_req(&other, &r, "GET", "/api/v1/feedback/stats/one", NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);
    json_t *topo = cache_stats(&other, &r);
    assert_string_equal(jstr(topo, "mode"), "standalone");
    json_t *nodes = jget(topo, "nodes");
    assert_int_equal(json_array_size(nodes), 1);
    json_t *o = json_array_get(nodes, 0);
    char addr[32];
    fmt(addr, sizeof(addr), "127.0.0.1:%d", redis.port);
    assert_string_equal(jstr(o, "addr"), addr);
    assert_string_equal(jstr(o, "role"), "primary");
    assert_int_equal(jint(o, "slots"), 16384);
    assert_true(json_is_null(jget(o, "id")));
    assert_true(jint(o, "commands") > 0);
    assert_int_equal(jint(topo, "refreshes"), 0);
    api_free(&r);
    api_req(&other, &r, "GET", "/metrics", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_true(sample(r.h.body, "utxoiq_cache_redis_cluster") == 0);
    char series[128];
    fmt(series, sizeof(series),
        "utxoiq_cache_redis_node_slots{node=\"%s\",role=\"primary\"}", addr);
    assert_true(sample(r.h.body, series) == 16384);
    assert_int_equal(
        count_lines(r.h.body, "utxoiq_cache_redis_node_commands_total{", NULL),
        1);
    api_free(&r);
    assert_int_equal(uc_test_api_stop(&other), 0);
    uc_test_api_destroy(&other);
    uc_test_redis_stop(&redis);

    const char *menv[] = {"UTXOCACHE_BACKEND=memory", NULL};
    memset(&other, 0, sizeof(other));
    assert_int_equal(uc_test_api_start(&other, NULL, menv), 0);
    topo = cache_stats(&other, &r);
    assert_string_equal(jstr(topo, "mode"), "none");
    assert_int_equal(json_array_size(jget(topo, "nodes")), 0);
    api_free(&r);
    api_req(&other, &r, "GET", "/metrics", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_null(strstr(r.h.body, "utxoiq_cache_redis_"));
    api_free(&r);
    assert_int_equal(uc_test_api_stop(&other), 0);
    uc_test_api_destroy(&other);
}

/* Last: the cluster service drains and exits 0; a sanitizer report or a
 * leak at exit makes that status non-zero. */
static void test_service_exits_zero(void **state)
{
    (void)state;
    skip_if_unavailable();
    assert_int_equal(uc_test_api_stop(&api), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cached_reads_on_every_primary),
        cmocka_unit_test(test_stats_json),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_cli_stats_and_keys),
        cmocka_unit_test(test_standalone_and_memory),
        cmocka_unit_test(test_service_exits_zero),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
