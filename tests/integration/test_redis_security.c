/* SPDX-License-Identifier: MIT */
/*
 * Security of the cache's Redis connection, against real servers started by
 * this test. Group "acl": a redis-server loaded with docs/redis-acl.conf (the
 * shipped least-privilege user, password filled in) serves every library
 * operation through that user, refuses everything outside the key prefix and
 * every administrative command, answers a wrong password with UC_EAUTH, and
 * no password ever reaches a log line or an error message. Group "tls": the
 * library reaches a TLS-only redis-server (port 0, tls-port) through a local
 * stunnel client tunnel that checks the server's certificate chain and host
 * name; the plaintext port is closed, and a server whose certificate comes
 * from another CA, or names another host, gets no command and no data.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "redis_server.h"
#include "util.h"
#include "utxocache/utxocache.h"

#ifndef UC_SOURCE_DIR
#error "UC_SOURCE_DIR must name the source tree (docs/redis-acl.conf)"
#endif

#define APP_USER "utxoiq"
#define APP_PASSWORD "pw-7c1e9a-s3kr1t"
#define WRONG_PASSWORD "pw-wrong-55d0e2"
#define ADMIN_PASSWORD "pw-admin-0b94f3"
#define PREFIX "utxoiq:"
#define ACL_PLACEHOLDER ">CHANGE-ME"
#define CHILD_WAIT_MS 20000u

#define K(s) (s), strlen(s)

/* ---- log capture ----------------------------------------------------------
 */

/* Every line any cache of this test logs, checked for secrets as it comes. */
typedef struct {
    pthread_mutex_t mu;
    size_t lines;
    size_t warnings;
    size_t leaks;
    char last_warning[512];
} logcap_t;

static logcap_t logs = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, ""};

static int has_secret(const char *s)
{
    return strstr(s, APP_PASSWORD) != NULL ||
           strstr(s, WRONG_PASSWORD) != NULL ||
           strstr(s, ADMIN_PASSWORD) != NULL;
}

static void capture_log(void *arg, uc_log_level_t level, const char *msg)
{
    logcap_t *lc = arg;

    pthread_mutex_lock(&lc->mu);
    lc->lines++;
    if (has_secret(msg)) {
        lc->leaks++;
        fprintf(stderr, "password in a log line: %s\n", msg);
    }
    if (level >= UC_LOG_WARN) {
        lc->warnings++;
        snprintf(lc->last_warning, sizeof(lc->last_warning), "%s", msg);
    }
    pthread_mutex_unlock(&lc->mu);
}

static void logs_snapshot(size_t *lines, size_t *warnings, size_t *leaks)
{
    pthread_mutex_lock(&logs.mu);
    *lines = logs.lines;
    *warnings = logs.warnings;
    *leaks = logs.leaks;
    pthread_mutex_unlock(&logs.mu);
}

/* ---- child processes ------------------------------------------------------
 */

/* Forks and runs argv with stdout and stderr appended to `log`. */
static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid < 0 ? 0 : pid;
}

/* Waits up to ms for pid to exit; returns its wait status or -1. */
static int reap(pid_t pid, unsigned ms)
{
    uint64_t deadline = uc_test_now_ms() + ms;
    int status = 0;

    for (;;) {
        pid_t p = waitpid(pid, &status, WNOHANG);
        if (p == pid) {
            return status;
        }
        if (p < 0 || uc_test_now_ms() >= deadline) {
            return -1;
        }
        uc_test_sleep_ms(5);
    }
}

/* Stops a child of ours: SIGTERM, then SIGKILL after 2 s. */
static void stop_child(pid_t *pid)
{
    if (*pid <= 0) {
        return;
    }
    kill(*pid, SIGTERM);
    if (reap(*pid, 2000) < 0) {
        kill(*pid, SIGKILL);
        reap(*pid, 5000);
    }
    *pid = 0;
}

/* Runs a short command to completion (bounded); returns 0 on exit status 0. */
static int run(char *const argv[], const char *log)
{
    pid_t pid = spawn(argv, log);
    int status;

    if (pid <= 0) {
        return -1;
    }
    status = reap(pid, CHILD_WAIT_MS);
    if (status < 0) {
        stop_child(&pid);
        return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int tcp_connects(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok;

    if (fd < 0) {
        return 0;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Waits (bounded, 5 s) until pid listens on port; 0 or -1 if it died. */
static int wait_listening(pid_t pid, int port)
{
    uint64_t deadline = uc_test_now_ms() + 5000;
    int status;

    while (uc_test_now_ms() < deadline) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return -1;
        }
        if (tcp_connects(port)) {
            return 0;
        }
        uc_test_sleep_ms(10);
    }
    return -1;
}

/* ---- files ----------------------------------------------------------------
 */

static int write_file(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    va_list ap;
    int ok;

    if (f == NULL) {
        return -1;
    }
    va_start(ap, fmt);
    ok = vfprintf(f, fmt, ap) >= 0;
    va_end(ap);
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Whether the file contains `needle` (files here are small logs). */
static int file_contains(const char *path, const char *needle)
{
    char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        return 0;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/*
 * Copies docs/redis-acl.conf to `path` with the placeholder password replaced,
 * plus an administrator for the test's own inspection. Fails when the shipped
 * file lacks the application user, so the test always checks the real file.
 */
static int install_acl(const char *path)
{
    char line[2048];
    FILE *in = fopen(UC_SOURCE_DIR "/docs/redis-acl.conf", "r");
    FILE *out = fopen(path, "w");
    int found = 0;

    if (in == NULL || out == NULL) {
        goto done;
    }
    while (fgets(line, sizeof(line), in) != NULL) {
        char *ph = strstr(line, ACL_PLACEHOLDER);

        if (strncmp(line, "user " APP_USER " ", strlen("user " APP_USER " ")) ==
                0 &&
            ph != NULL) {
            found = 1;
            fprintf(out, "%.*s>%s%s", (int)(ph - line), line, APP_PASSWORD,
                    ph + strlen(ACL_PLACEHOLDER));
        } else {
            fputs(line, out);
        }
    }
    fprintf(out, "user admin on >%s ~* &* +@all\n", ADMIN_PASSWORD);

done:
    if (in != NULL) {
        fclose(in);
    }
    if (out != NULL && fclose(out) != 0) {
        found = 0;
    }
    return found ? 0 : -1;
}

/* ---- caches ---------------------------------------------------------------
 */

static uc_cache_t *make_cache(int port, const char *user, const char *password,
                              const char *prefix)
{
    uc_config_t cfg = UC_CONFIG_INIT;
    uc_cache_t *c = NULL;
    char err[256] = "";
    size_t n;
    const uc_keyspace_def_t *defs = uc_test_keyspaces(&n);

    cfg.backend = UC_BACKEND_REDIS;
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = port;
    snprintf(cfg.username, sizeof(cfg.username), "%s", user);
    snprintf(cfg.password, sizeof(cfg.password), "%s", password);
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "%s", prefix);
    cfg.connect_timeout_ms = 2000;
    cfg.command_timeout_ms = 2000;
    cfg.breaker_cooldown_ms = 50;
    cfg.log_fn = capture_log;
    cfg.log_arg = &logs;
    cfg.log_level = UC_LOG_DEBUG;
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_false(has_secret(err));
    assert_int_equal(uc_cache_add_keyspaces(c, defs, n, err, sizeof(err)),
                     UC_OK);
    return c;
}

typedef struct {
    const char *value;
    int calls;
} loader_t;

static int load_value(void *arg, char **val, size_t *len)
{
    loader_t *l = arg;
    size_t n = strlen(l->value);

    l->calls++;
    *val = malloc(n + 1);
    if (*val == NULL) {
        return UC_ENOMEM;
    }
    memcpy(*val, l->value, n + 1);
    *len = n;
    return UC_OK;
}

/* get-or-load of feedback_stats/{id}; checks value and returns the source. */
static uc_source_t get_or_load(uc_cache_t *c, const char *id, loader_t *l)
{
    const char *fields[1] = {id};
    uc_keyspace_t *ks = uc_cache_keyspace(c, "feedback_stats");
    uc_source_t src = 0;
    char *v = NULL;
    size_t len = 0;

    assert_non_null(ks);
    assert_int_equal(uc_test_get_or_load(ks, fields, 1, load_value, l, NULL,
                                         NULL, &v, &len, &src),
                     UC_OK);
    assert_int_equal(len, strlen(l->value));
    assert_memory_equal(v, l->value, len);
    uc_free(v);
    return src;
}

/* ---- group "acl" ----------------------------------------------------------
 */

static struct {
    char dir[512];
    char admin_args[256];
    char app_args[256];
    uc_test_redis_t server;
} acl;

static int acl_setup(void **state)
{
    char aclpath[600];
    char extra[700];

    (void)state;
    memset(&acl.server, 0, sizeof(acl.server));
    if (uc_test_mkdtemp(acl.dir, sizeof(acl.dir), "sec-acl") != 0) {
        return -1;
    }
    snprintf(aclpath, sizeof(aclpath), "%s/users.acl", acl.dir);
    if (install_acl(aclpath) != 0) {
        fprintf(stderr, "docs/redis-acl.conf has no 'user " APP_USER
                        " ... " ACL_PLACEHOLDER "' line\n");
        return -1;
    }
    /* The support's readiness PING is answered NOAUTH: default is off. */
    snprintf(extra, sizeof(extra), "aclfile %s\n", aclpath);
    snprintf(acl.admin_args, sizeof(acl.admin_args),
             "--no-auth-warning --user admin --pass %s", ADMIN_PASSWORD);
    snprintf(acl.app_args, sizeof(acl.app_args),
             "--no-auth-warning --user %s --pass %s", APP_USER, APP_PASSWORD);
    return uc_test_redis_start(&acl.server, extra);
}

static int acl_teardown(void **state)
{
    (void)state;
    uc_test_redis_stop(&acl.server);
    uc_test_rmtree(acl.dir);
    return 0;
}

static void admin_cli(const char *command, char *out, size_t outlen)
{
    assert_int_equal(
        uc_test_redis_cli(&acl.server, acl.admin_args, command, out, outlen),
        0);
}

static void every_operation_works_through_the_acl_user(void **state)
{
    uc_cache_t *c = make_cache(acl.server.port, APP_USER, APP_PASSWORD, PREFIX);
    const char *keys[3] = {"m:1", "m:2", "m:absent"};
    const size_t klens[3] = {3, 3, 8};
    const char *vals[2] = {"one", "two"};
    const size_t vlens[2] = {3, 3};
    const char *metric[2] = {"api", "latency"};
    const char *any_service[2] = {"api", NULL};
    uc_value_t got[3];
    uc_keyspace_t *recent = uc_cache_keyspace(c, "recent_metrics");
    loader_t l = {"{\"avg\":4.5}", 0};
    uc_stats_t st;
    uc_pool_stats_t ps;
    char *v = NULL;
    size_t len = 0, removed = 0, w0, w1, leaks, lines;
    uint64_t count = 0, rtt = 0;
    int64_t ttl = 0;
    int existed = -1;
    char out[256], want[64];

    (void)state;
    logs_snapshot(&lines, &w0, &leaks);
    assert_int_equal(uc_cache_ping(c, &rtt), UC_OK);
    assert_int_equal(uc_cache_set(c, K("k"), K("v1"), 60000), UC_OK);
    assert_int_equal(uc_cache_get(c, K("k"), &v, &len), UC_OK);
    assert_int_equal(len, 2);
    assert_memory_equal(v, "v1", 2);
    uc_free(v);
    assert_int_equal(uc_cache_exists(c, K("k")), UC_OK);
    assert_int_equal(uc_cache_ttl(c, K("k"), &ttl), UC_OK);
    assert_true(ttl > 0 && ttl <= 60000);
    assert_int_equal(uc_cache_del(c, K("k"), &existed), UC_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(uc_cache_exists(c, K("k")), UC_MISS);
    assert_int_equal(uc_cache_get(c, K("k"), &v, &len), UC_MISS);

    assert_int_equal(uc_cache_mset(c, 2, keys, klens, vals, vlens, 60000),
                     UC_OK);
    assert_int_equal(uc_cache_mget(c, 3, keys, klens, got), UC_OK);
    assert_int_equal(got[0].status, UC_OK);
    assert_memory_equal(got[0].data, "one", 3);
    assert_int_equal(got[1].status, UC_OK);
    assert_memory_equal(got[1].data, "two", 3);
    assert_int_equal(got[2].status, UC_MISS);
    uc_values_release(got, 3);
    assert_int_equal(uc_cache_count_pattern(c, "m:*", &count), UC_OK);
    assert_int_equal(count, 2);
    assert_int_equal(uc_cache_delete_pattern(c, "m:*", &removed), UC_OK);
    assert_int_equal(removed, 2);

    /* get-or-load: miss then load (EVAL/SCRIPT LOAD), then a hit. */
    assert_int_equal(get_or_load(c, "insight-1", &l), UC_FROM_LOADER);
    assert_int_equal(get_or_load(c, "insight-1", &l), UC_FROM_CACHE);
    assert_int_equal(l.calls, 1);
    /* A second load after invalidation stores through EVALSHA. */
    {
        const char *f[1] = {"insight-1"};
        uc_keyspace_t *fs = uc_cache_keyspace(c, "feedback_stats");
        assert_int_equal(uc_keyspace_invalidate(fs, f, 1, &removed), UC_OK);
        assert_int_equal(removed, 1);
    }
    assert_int_equal(get_or_load(c, "insight-1", &l), UC_FROM_LOADER);
    assert_int_equal(get_or_load(c, "insight-1", &l), UC_FROM_CACHE);
    assert_int_equal(l.calls, 2);

    /* Keyspace set/get, count and a pattern invalidation (INCR, SCAN). */
    assert_non_null(recent);
    assert_int_equal(uc_keyspace_set(recent, metric, 2, K("[1,2]")), UC_OK);
    assert_int_equal(uc_keyspace_get(recent, metric, 2, &v, &len), UC_OK);
    assert_memory_equal(v, "[1,2]", 5);
    uc_free(v);
    assert_int_equal(uc_keyspace_count(recent, &count), UC_OK);
    assert_int_equal(count, 1);
    assert_int_equal(uc_keyspace_invalidate(recent, any_service, 2, &removed),
                     UC_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(uc_keyspace_get(recent, metric, 2, &v, &len), UC_MISS);

    uc_cache_stats(c, &st);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.set_errors, 0);
    assert_int_equal(st.invalidation_failures, 0);
    assert_int_equal(st.stale_rejects, 0);
    uc_cache_pool_stats(c, &ps);
    assert_int_equal(ps.connect_failures, 0);
    assert_int_equal(ps.breaker_opens, 0);
    logs_snapshot(&lines, &w1, &leaks);
    assert_int_equal(w1, w0);

    /* Everything the library wrote lies under the prefix: the whole
     * database holds exactly the keys the library can count below it. */
    /* The near cache's heartbeat keys come and go meanwhile (one every
     * 100 ms, each living 10 s): the two counts are taken again, boundedly,
     * until they were taken between two such changes. */
    for (int tries = 0;; tries++) {
        assert_int_equal(uc_cache_count_pattern(c, "*", &count), UC_OK);
        assert_true(count > 0);
        admin_cli("DBSIZE", out, sizeof(out));
        snprintf(want, sizeof(want), "%llu", (unsigned long long)count);
        if (strcmp(out, want) == 0 || tries >= 50) {
            break;
        }
        uc_test_sleep_ms(20);
    }
    assert_string_equal(out, want);
    uc_cache_destroy(c);
}

/*
 * INFO is @dangerous and not granted: server_info fails with UC_EAUTH and
 * leaves *out alone, while the connection, the breaker and every other call
 * carry on.
 */
static void server_info_degrades_without_info_permission(void **state)
{
    uc_cache_t *c = make_cache(acl.server.port, APP_USER, APP_PASSWORD, PREFIX);
    uc_server_info_t info;
    uc_pool_stats_t ps;
    char *v = NULL;
    size_t len = 0;

    (void)state;
    memset(&info, 0x5a, sizeof(info));
    for (int i = 0; i < 10; i++) {
        assert_int_equal(uc_cache_server_info(c, &info), UC_EAUTH);
    }
    assert_int_equal(info.used_memory, 0x5a5a5a5a5a5a5a5aull);
    assert_int_equal(uc_cache_set(c, K("after-info"), K("x"), 60000), UC_OK);
    assert_int_equal(uc_cache_get(c, K("after-info"), &v, &len), UC_OK);
    uc_free(v);
    uc_cache_pool_stats(c, &ps);
    assert_int_equal(ps.breaker, UC_BREAKER_CLOSED);
    assert_int_equal(ps.breaker_opens, 0);
    assert_int_equal(ps.connects, 1);
    uc_cache_destroy(c);
}

/* Expects redis-cli as the application user to be refused `command`. */
static void app_denied(const char *command)
{
    char out[512];

    uc_test_redis_cli_reply(&acl.server, acl.app_args, command, out,
                            sizeof(out));
    if (strncmp(out, "NOPERM", 6) != 0) {
        fail_msg("'%s' as " APP_USER " answered '%s', not NOPERM", command,
                 out);
    }
    assert_false(has_secret(out));
}

static void redis_refuses_everything_else(void **state)
{
    char out[512];
    uc_cache_t *c =
        make_cache(acl.server.port, APP_USER, APP_PASSWORD, "outside:");
    loader_t l = {"from-db", 0};
    char *v = NULL;
    size_t len = 0;
    int rc;

    (void)state;
    /* The control: the same user may write and read inside the prefix. */
    assert_int_equal(uc_test_redis_cli(&acl.server, acl.app_args,
                                       "SET " PREFIX "cli 1", out, sizeof(out)),
                     0);
    assert_string_equal(out, "OK");
    assert_int_equal(uc_test_redis_cli(&acl.server, acl.app_args,
                                       "GET " PREFIX "cli", out, sizeof(out)),
                     0);
    assert_string_equal(out, "1");

    app_denied("SET outside:k 1");
    app_denied("GET outside:k");
    app_denied("FLUSHALL");
    app_denied("FLUSHDB");
    app_denied("KEYS '*'");
    app_denied("CONFIG GET requirepass");
    app_denied("CONFIG SET appendonly yes");
    app_denied("INFO");
    app_denied("DEL " PREFIX "cli");
    app_denied("SCRIPT FLUSH");
    app_denied("ACL LIST");
    app_denied("DEBUG SLEEP 0");
    app_denied("SHUTDOWN NOSAVE");
    app_denied("PUBLISH chan x");
    /* A script may not reach outside the prefix either. */
    uc_test_redis_cli_reply(
        &acl.server, acl.app_args,
        "EVAL \"return redis.call('SET','outside:e','1')\" 0", out,
        sizeof(out));
    assert_non_null(strstr(out, "user executing the script can't access"));
    /* Nobody gets in without a user: the default user is off. */
    uc_test_redis_cli_reply(&acl.server, NULL, "GET " PREFIX "cli", out,
                            sizeof(out));
    assert_int_equal(strncmp(out, "NOAUTH", 6), 0);

    /* Through the library: a cache with another prefix is refused too, and
     * get-or-load falls back to its loader. */
    rc = uc_cache_set(c, K("k"), K("v"), 60000);
    assert_int_equal(rc, UC_EAUTH);
    assert_int_equal(uc_cache_get(c, K("k"), &v, &len), UC_EAUTH);
    assert_null(v);
    assert_int_equal(get_or_load(c, "insight-2", &l), UC_FROM_FALLBACK);
    assert_int_equal(l.calls, 1);

    admin_cli("EXISTS outside:k outside:e outside:feedback:stats:insight-2",
              out, sizeof(out));
    assert_string_equal(out, "0");
    uc_cache_destroy(c);
}

/*
 * The first call of a fresh cache meets the refusal itself; later ones may
 * meet the pool's reconnect backoff instead, which is UC_EUNAVAILABLE.
 */
static void check_refused(uc_cache_t *c)
{
    loader_t l = {"fallback", 0};
    char *v = NULL;
    size_t len = 0;
    int rc;

    assert_int_equal(uc_cache_ping(c, NULL), UC_EAUTH);
    rc = uc_cache_get(c, K("k"), &v, &len);
    assert_true(rc == UC_EAUTH || rc == UC_EUNAVAILABLE);
    assert_null(v);
    assert_int_equal(get_or_load(c, "insight-3", &l), UC_FROM_FALLBACK);
}

static void wrong_credentials_give_eauth(void **state)
{
    size_t lines0, w0, leaks, lines1, w1;
    uc_cache_t *c;
    char last[512];

    (void)state;
    logs_snapshot(&lines0, &w0, &leaks);
    c = make_cache(acl.server.port, APP_USER, WRONG_PASSWORD, PREFIX);
    check_refused(c);
    uc_cache_destroy(c);
    /* The right password under another user, and no user (default, off). */
    c = make_cache(acl.server.port, "nobody", APP_PASSWORD, PREFIX);
    check_refused(c);
    uc_cache_destroy(c);
    c = make_cache(acl.server.port, "", APP_PASSWORD, PREFIX);
    check_refused(c);
    uc_cache_destroy(c);

    logs_snapshot(&lines1, &w1, &leaks);
    /* Each cache said why it could not connect. */
    assert_true(w1 >= w0 + 3);
    pthread_mutex_lock(&logs.mu);
    snprintf(last, sizeof(last), "%s", logs.last_warning);
    pthread_mutex_unlock(&logs.mu);
    assert_non_null(strstr(last, "authentication failed"));
}

/* Runs last in its group: every line logged so far was checked. */
static void no_password_in_logs_or_messages(void **state)
{
    uc_config_t cfg = UC_CONFIG_INIT;
    uc_cache_t *c = NULL;
    char err[512] = "";
    char desc[512] = "";
    size_t lines, warnings, leaks;

    (void)state;
    logs_snapshot(&lines, &warnings, &leaks);
    assert_true(lines > 0);
    assert_true(warnings > 0);
    assert_int_equal(leaks, 0);

    /* A refused configuration and a bad URL name the problem, not the
     * password; the description masks it. */
    cfg.backend = UC_BACKEND_REDIS;
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = acl.server.port;
    snprintf(cfg.password, sizeof(cfg.password), "%s", APP_PASSWORD);
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "bad prefix*");
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_ECONFIG);
    assert_null(c);
    assert_true(err[0] != '\0');
    assert_false(has_secret(err));

    err[0] = '\0';
    assert_int_equal(uc_config_parse_url(&cfg,
                                         "redis://" APP_USER ":" APP_PASSWORD
                                         "@127.0.0.1:99999/0",
                                         err, sizeof(err)),
                     UC_ECONFIG);
    assert_true(err[0] != '\0');
    assert_false(has_secret(err));

    cfg.key_prefix[0] = '\0';
    snprintf(cfg.username, sizeof(cfg.username), APP_USER);
    uc_config_describe(&cfg, desc, sizeof(desc));
    assert_non_null(strstr(desc, APP_USER));
    assert_false(has_secret(desc));
}

/* ---- group "tls" ----------------------------------------------------------
 */

/* A TLS-only redis-server and the stunnel client tunnel in front of it. */
typedef struct {
    const char *name; /* also the certificate's file stem */
    const char *ca;   /* file stem of the CA that signed it */
    pid_t redis;
    pid_t tunnel;
    int tls_port;
    int local_port;
    char redis_log[600];
    char tunnel_log[600];
} site_t;

static struct {
    char dir[512];
    site_t good;  /* certificate from our CA for "localhost" */
    site_t rogue; /* certificate for "localhost" from another CA */
    site_t other; /* certificate from our CA for another host name */
} tls;

static int make_ca(const char *stem)
{
    char key[600], crt[600], subj[64], log[600];
    char *argv[] = {"openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    subj,
                    "-keyout",
                    key,
                    "-out",
                    crt,
                    NULL};

    snprintf(key, sizeof(key), "%s/%s.key", tls.dir, stem);
    snprintf(crt, sizeof(crt), "%s/%s.crt", tls.dir, stem);
    snprintf(subj, sizeof(subj), "/CN=utxocache test %s", stem);
    snprintf(log, sizeof(log), "%s/openssl.log", tls.dir);
    return run(argv, log);
}

/* A server certificate `stem` for `host`, signed by CA `ca`. */
static int make_cert(const char *ca, const char *stem, const char *host,
                     const char *serial)
{
    char key[600], csr[600], crt[600], ext[600], log[600];
    char cakey[600], cacrt[600], subj[300];
    char *req[] = {"openssl",
                   "req",
                   "-new",
                   "-newkey",
                   "ec",
                   "-pkeyopt",
                   "ec_paramgen_curve:P-256",
                   "-nodes",
                   "-subj",
                   subj,
                   "-keyout",
                   key,
                   "-out",
                   csr,
                   NULL};
    char *sign[] = {
        "openssl",      "x509",  "-req",   "-in",      csr,
        "-CA",          cacrt,   "-CAkey", cakey,      "-set_serial",
        (char *)serial, "-days", "2",      "-extfile", ext,
        "-out",         crt,     NULL};

    snprintf(key, sizeof(key), "%s/%s.key", tls.dir, stem);
    snprintf(csr, sizeof(csr), "%s/%s.csr", tls.dir, stem);
    snprintf(crt, sizeof(crt), "%s/%s.crt", tls.dir, stem);
    snprintf(ext, sizeof(ext), "%s/%s.ext", tls.dir, stem);
    snprintf(cakey, sizeof(cakey), "%s/%s.key", tls.dir, ca);
    snprintf(cacrt, sizeof(cacrt), "%s/%s.crt", tls.dir, ca);
    snprintf(subj, sizeof(subj), "/CN=%s", host);
    snprintf(log, sizeof(log), "%s/openssl.log", tls.dir);
    if (write_file(ext,
                   "subjectAltName=DNS:%s,IP:127.0.0.1\n"
                   "basicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n",
                   host) != 0) {
        return -1;
    }
    return run(req, log) == 0 && run(sign, log) == 0 ? 0 : -1;
}

/*
 * Starts the site's tunnel through scripts/redis-tls-tunnel (which execs
 * stunnel, so the pid is stunnel's): it trusts only our CA and the name
 * "localhost". Returns 0 once it listens on s->local_port.
 */
static int tunnel_start(site_t *s)
{
    char connect[32], accept[32], cafile[600];
    char *argv[] = {UC_SOURCE_DIR "/scripts/redis-tls-tunnel",
                    "--connect",
                    connect,
                    "--cafile",
                    cafile,
                    "--check-host",
                    "localhost",
                    "--accept",
                    accept,
                    NULL};

    snprintf(connect, sizeof(connect), "127.0.0.1:%d", s->tls_port);
    snprintf(accept, sizeof(accept), "127.0.0.1:%d", s->local_port);
    snprintf(cafile, sizeof(cafile), "%s/ca.crt", tls.dir);
    s->tunnel = spawn(argv, s->tunnel_log);
    if (s->tunnel > 0 && wait_listening(s->tunnel, s->local_port) != 0) {
        stop_child(&s->tunnel);
    }
    return s->tunnel > 0 ? 0 : -1;
}

/*
 * Starts the site's redis-server with no plaintext port, then its tunnel.
 * Retries on a port race.
 */
static int site_start(site_t *s)
{
    char conf[600], acl_path[600];
    char *redis_argv[] = {"redis-server", conf, NULL};

    snprintf(conf, sizeof(conf), "%s/%s-redis.conf", tls.dir, s->name);
    snprintf(acl_path, sizeof(acl_path), "%s/users.acl", tls.dir);
    snprintf(s->redis_log, sizeof(s->redis_log), "%s/%s-redis.log", tls.dir,
             s->name);
    snprintf(s->tunnel_log, sizeof(s->tunnel_log), "%s/%s-stunnel.log", tls.dir,
             s->name);
    for (int attempt = 0; attempt < 5 && s->redis == 0; attempt++) {
        s->tls_port = uc_test_free_port();
        if (write_file(conf,
                       "port 0\nbind 127.0.0.1\ntls-port %d\n"
                       "tls-cert-file %s/%s.crt\ntls-key-file %s/%s.key\n"
                       "tls-ca-cert-file %s/ca.crt\ntls-auth-clients no\n"
                       "aclfile %s\ndir %s\nsave \"\"\nappendonly no\n"
                       "daemonize no\nlogfile \"\"\n",
                       s->tls_port, tls.dir, s->name, tls.dir, s->name, tls.dir,
                       acl_path, tls.dir) != 0) {
            return -1;
        }
        s->redis = spawn(redis_argv, s->redis_log);
        if (s->redis > 0 && wait_listening(s->redis, s->tls_port) != 0) {
            stop_child(&s->redis);
        }
    }
    for (int attempt = 0; attempt < 5 && s->redis > 0 && s->tunnel == 0;
         attempt++) {
        s->local_port = uc_test_free_port();
        tunnel_start(s);
    }
    if (s->redis == 0 || s->tunnel == 0) {
        fprintf(stderr, "site '%s' did not start; see %s and %s\n", s->name,
                s->redis_log, s->tunnel_log);
        return -1;
    }
    return 0;
}

static void site_stop(site_t *s)
{
    stop_child(&s->tunnel);
    stop_child(&s->redis);
}

static int tls_setup(void **state)
{
    char acl_path[600];

    (void)state;
    memset(&tls, 0, sizeof(tls));
    tls.good = (site_t){.name = "good", .ca = "ca"};
    tls.rogue = (site_t){.name = "rogue", .ca = "otherca"};
    tls.other = (site_t){.name = "other", .ca = "ca"};
    if (uc_test_mkdtemp(tls.dir, sizeof(tls.dir), "sec-tls") != 0) {
        return -1;
    }
    snprintf(acl_path, sizeof(acl_path), "%s/users.acl", tls.dir);
    if (install_acl(acl_path) != 0 || make_ca("ca") != 0 ||
        make_ca("otherca") != 0 ||
        make_cert("ca", "good", "localhost", "2") != 0 ||
        make_cert("otherca", "rogue", "localhost", "3") != 0 ||
        make_cert("ca", "other", "redis.elsewhere.test", "4") != 0) {
        fprintf(stderr, "certificates not made; see %s/openssl.log\n", tls.dir);
        return -1;
    }
    if (site_start(&tls.good) != 0 || site_start(&tls.rogue) != 0 ||
        site_start(&tls.other) != 0) {
        return -1;
    }
    return 0;
}

static int tls_teardown(void **state)
{
    (void)state;
    site_stop(&tls.good);
    site_stop(&tls.rogue);
    site_stop(&tls.other);
    uc_test_rmtree(tls.dir);
    return 0;
}

/* redis-cli straight to a site's TLS port as the administrator, trusting
 * the CA that signed that site's certificate. */
static void tls_admin_cli(const site_t *s, const char *command, char *out,
                          size_t outlen)
{
    uc_test_redis_t r;
    char args[1200];

    memset(&r, 0, sizeof(r));
    r.port = s->tls_port;
    snprintf(args, sizeof(args),
             "--tls --cacert %s/%s.crt --no-auth-warning --user admin "
             "--pass %s",
             tls.dir, s->ca, ADMIN_PASSWORD);
    assert_int_equal(uc_test_redis_cli(&r, args, command, out, outlen), 0);
}

static void round_trip_through_the_tunnel(void **state)
{
    uc_cache_t *c =
        make_cache(tls.good.local_port, APP_USER, APP_PASSWORD, PREFIX);
    loader_t l = {"{\"rating\":4}", 0};
    char *v = NULL;
    size_t len = 0;
    char out[256];

    (void)state;
    assert_int_equal(uc_cache_ping(c, NULL), UC_OK);
    assert_int_equal(uc_cache_set(c, K("tls:k"), K("over tls"), 60000), UC_OK);
    assert_int_equal(uc_cache_get(c, K("tls:k"), &v, &len), UC_OK);
    assert_int_equal(len, 8);
    assert_memory_equal(v, "over tls", 8);
    uc_free(v);
    assert_int_equal(get_or_load(c, "insight-tls", &l), UC_FROM_LOADER);
    assert_int_equal(get_or_load(c, "insight-tls", &l), UC_FROM_CACHE);
    assert_int_equal(l.calls, 1);

    /* The bytes live on the TLS server, read back over TLS directly. */
    tls_admin_cli(&tls.good, "GET " PREFIX "tls:k", out, sizeof(out));
    assert_string_equal(out, "over tls");
    /* The entry is stored in its envelope, the value last (12 bytes). */
    tls_admin_cli(&tls.good,
                  "GETRANGE " PREFIX "feedback:stats:insight-tls -12 -1", out,
                  sizeof(out));
    assert_string_equal(out, "{\"rating\":4}");
    uc_cache_destroy(c);
}

/*
 * The TCP ports `pid` listens on, from /proc: its socket inodes matched
 * against the LISTEN rows of /proc/net/tcp and tcp6. Loopback-only flags
 * whether every listener is bound to 127.0.0.1.
 */
static size_t listening_ports(pid_t pid, int *ports, size_t cap,
                              int *loopback_only)
{
    static const char *const tables[2] = {"/proc/net/tcp", "/proc/net/tcp6"};
    unsigned long inodes[64];
    size_t ninodes = 0, n = 0;
    char path[128], link[128], line[512];
    struct dirent *de;
    DIR *d;

    *loopback_only = 1;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL && ninodes < 64) {
        char fdpath[400];
        ssize_t ln;
        unsigned long ino;

        snprintf(fdpath, sizeof(fdpath), "%s/%s", path, de->d_name);
        ln = readlink(fdpath, link, sizeof(link) - 1);
        if (ln <= 0) {
            continue;
        }
        link[ln] = '\0';
        if (sscanf(link, "socket:[%lu]", &ino) == 1) {
            inodes[ninodes++] = ino;
        }
    }
    closedir(d);
    for (size_t t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "r");

        if (f == NULL) {
            continue;
        }
        while (fgets(line, sizeof(line), f) != NULL) {
            char local[64];
            unsigned st = 0, port = 0;
            unsigned long ino = 0;
            char *colon;

            if (sscanf(line, " %*u: %63s %*s %x %*s %*s %*s %*s %*s %lu", local,
                       &st, &ino) != 3 ||
                st != 0x0A) {
                continue;
            }
            colon = strrchr(local, ':');
            if (colon == NULL || sscanf(colon + 1, "%x", &port) != 1) {
                continue;
            }
            for (size_t i = 0; i < ninodes; i++) {
                if (inodes[i] == ino && n < cap) {
                    ports[n++] = (int)port;
                    /* 127.0.0.1 as /proc prints it (little-endian hex). */
                    if (t != 0 || strncmp(local, "0100007F:", 9) != 0) {
                        *loopback_only = 0;
                    }
                }
            }
        }
        fclose(f);
    }
    return n;
}

static void plaintext_port_is_closed(void **state)
{
    int ports[16];
    int loopback_only = 0;
    size_t n;
    uc_cache_t *c;

    (void)state;
    /* The server listens on its TLS port alone, on loopback. */
    n = listening_ports(tls.good.redis, ports, 16, &loopback_only);
    assert_int_equal(n, 1);
    assert_int_equal(ports[0], tls.good.tls_port);
    assert_true(loopback_only);
    /* The tunnel's plaintext side is on loopback only, too. */
    n = listening_ports(tls.good.tunnel, ports, 16, &loopback_only);
    assert_int_equal(n, 1);
    assert_int_equal(ports[0], tls.good.local_port);
    assert_true(loopback_only);

    /* Plain RESP to the TLS port gets nowhere (no credentials are sent). */
    c = make_cache(tls.good.tls_port, "", "", PREFIX);
    assert_true(uc_cache_ping(c, NULL) < 0);
    uc_cache_destroy(c);
}

/* The library sees an error, never data; the server never saw the write. */
static void check_untrusted_site(site_t *s, const char *log_says)
{
    uc_cache_t *c = make_cache(s->local_port, APP_USER, APP_PASSWORD, PREFIX);
    loader_t l = {"from-db", 0};
    char *v = NULL;
    size_t len = 0;
    char out[256];
    int rc;

    rc = uc_cache_set(c, K("tls:k"), K("must not arrive"), 60000);
    assert_true(rc < 0);
    rc = uc_cache_get(c, K("tls:k"), &v, &len);
    assert_true(rc < 0);
    assert_null(v);
    assert_int_equal(get_or_load(c, "insight-tls", &l), UC_FROM_FALLBACK);
    uc_cache_destroy(c);

    tls_admin_cli(s, "EXISTS " PREFIX "tls:k", out, sizeof(out));
    assert_string_equal(out, "0");
    if (!file_contains(s->tunnel_log, log_says)) {
        fail_msg("%s does not say '%s'", s->tunnel_log, log_says);
    }
}

static void tunnel_refuses_a_certificate_from_another_ca(void **state)
{
    (void)state;
    check_untrusted_site(&tls.rogue, "unable to get local issuer certificate");
}

static void tunnel_refuses_a_certificate_for_another_host(void **state)
{
    (void)state;
    check_untrusted_site(&tls.other, "CERT: Subject checks failed");
}

/*
 * A restarted tunnel drops every connection: while it is gone the cache
 * answers with errors (no hang, no crash), and once it is back the cache
 * reconnects by itself.
 */
static void survives_a_tunnel_restart(void **state)
{
    uc_cache_t *c =
        make_cache(tls.good.local_port, APP_USER, APP_PASSWORD, PREFIX);
    uint64_t deadline;
    int rc = UC_EIO;

    (void)state;
    assert_int_equal(uc_cache_set(c, K("tls:r"), K("1"), 60000), UC_OK);
    kill(tls.good.tunnel, SIGKILL);
    reap(tls.good.tunnel, 5000);
    tls.good.tunnel = 0;
    /* Dead tunnel: an error, not a crash and not a hang. */
    assert_true(uc_cache_set(c, K("tls:r"), K("2"), 60000) < 0);

    assert_int_equal(tunnel_start(&tls.good), 0);
    deadline = uc_test_now_ms() + 5000;
    while (uc_test_now_ms() < deadline) {
        rc = uc_cache_set(c, K("tls:r"), K("3"), 60000);
        if (rc == UC_OK) {
            break;
        }
        uc_test_sleep_ms(20);
    }
    assert_int_equal(rc, UC_OK);
    uc_cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest acl_tests[] = {
        cmocka_unit_test(every_operation_works_through_the_acl_user),
        cmocka_unit_test(server_info_degrades_without_info_permission),
        cmocka_unit_test(redis_refuses_everything_else),
        cmocka_unit_test(wrong_credentials_give_eauth),
        cmocka_unit_test(no_password_in_logs_or_messages),
    };
    const struct CMUnitTest tls_tests[] = {
        cmocka_unit_test(round_trip_through_the_tunnel),
        cmocka_unit_test(plaintext_port_is_closed),
        cmocka_unit_test(tunnel_refuses_a_certificate_from_another_ca),
        cmocka_unit_test(tunnel_refuses_a_certificate_for_another_host),
        cmocka_unit_test(survives_a_tunnel_restart),
    };
    int failed = 0;

    failed +=
        cmocka_run_group_tests_name("acl", acl_tests, acl_setup, acl_teardown);
    failed +=
        cmocka_run_group_tests_name("tls", tls_tests, tls_setup, tls_teardown);
    return failed;
}
