/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of the utxocache command line: the real binary, run as
 * a child process with its own environment, against a real redis-server the
 * test starts (and against the memory backend where one process is enough
 * to show the behaviour). Each test checks exit status, stdout and stderr,
 * and, where it matters, what Redis itself holds afterwards.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_server.h"
#include "util.h"

#ifndef UC_CLI_PATH
#error "UC_CLI_PATH must name the utxocache binary"
#endif

#define OUT_MAX (256 * 1024)
#define ERR_MAX 4096
#define ENV_MAX 8

/* What one run of the CLI produced. */
typedef struct {
    int status; /* exit status, or -1 if it did not exit normally */
    char out[OUT_MAX];
    size_t outlen;
    char err[ERR_MAX];
    size_t errlen;
} cli_run_t;

/* One run's output is large; a static buffer also leaves nothing to free
 * when an assertion ends a test early. */
static cli_run_t g_run;
static uc_test_redis_t g_redis;
static char g_url[64];

/* Variables of the library that the parent's environment must not leak
 * into a run. */
static const char *const cleared_vars[] = {
    "REDIS_URL",         "REDIS_HOST",           "REDIS_PORT",
    "REDIS_PASSWORD",    "REDIS_USERNAME",       "REDIS_DB",
    "UTXOCACHE_BACKEND", "UTXOCACHE_KEY_PREFIX", NULL};

#define WRAPPER_WORDS 16

/*
 * In the child: runs the CLI with argv. Under UC_TEST_SERVER_WRAPPER (the
 * variable scripts/valgrind-tests sets for every binary of ours a test
 * starts, e.g. "valgrind --error-exitcode=99 ...") the wrapper's words,
 * split at spaces, come first, so that the CLI runs under memcheck as the
 * service does; a memory error then shows as an unexpected exit status.
 */
static void child_exec(char *const *argv, const char *const *env, int in,
                       int out, int err)
{
    static char wrap[1024];
    char *words[WRAPPER_WORDS + 16];
    const char *w = getenv("UC_TEST_SERVER_WRAPPER");
    size_t n = 0;

    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    for (const char *const *v = cleared_vars; *v != NULL; v++) {
        unsetenv(*v);
    }
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        putenv((char *)env[i]);
    }
    if (w != NULL && w[0] != '\0' && strlen(w) < sizeof(wrap)) {
        memcpy(wrap, w, strlen(w) + 1);
        for (char *p = wrap; *p != '\0' && n < WRAPPER_WORDS;) {
            while (*p == ' ') {
                *p++ = '\0';
            }
            if (*p == '\0') {
                break;
            }
            words[n++] = p;
            while (*p != '\0' && *p != ' ') {
                p++;
            }
        }
    }
    if (n > 0) {
        words[n++] = (char *)UC_CLI_PATH;
        for (size_t i = 1; argv[i] != NULL && n < WRAPPER_WORDS + 15; i++) {
            words[n++] = argv[i];
        }
        words[n] = NULL;
        execvp(words[0], words);
        _exit(127);
    }
    execv(UC_CLI_PATH, argv);
    _exit(127);
}

/* Appends what is readable on fd to buf (capped); 0 at EOF, 1 otherwise. */
static int drain(int fd, char *buf, size_t cap, size_t *len)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof(tmp));

    if (n < 0 && errno == EINTR) {
        return 1;
    }
    if (n <= 0) {
        return 0;
    }
    if (*len + (size_t)n < cap) {
        memcpy(buf + *len, tmp, (size_t)n);
        *len += (size_t)n;
        buf[*len] = '\0';
    }
    return 1;
}

/*
 * Runs the CLI with `env` ("NAME=value" strings, NULL-terminated; the
 * library's variables are cleared first), `input` on stdin (inlen bytes) and
 * the NULL-terminated arguments after argv[0]. Bounded: a run that takes
 * more than 10 s is killed and fails the test.
 */
static void run_cli(cli_run_t *r, const char *const *env, const char *input,
                    size_t inlen, ...)
{
    char *argv[16];
    int pin[2], pout[2], perr[2];
    int open_out = 1, open_err = 1;
    uint64_t deadline = uc_test_now_ms() + 10000;
    size_t argc = 1;
    va_list ap;
    pid_t pid;
    int st = 0;

    memset(r, 0, sizeof(*r));
    argv[0] = "utxocache";
    va_start(ap, inlen);
    for (char *a = va_arg(ap, char *); a != NULL; a = va_arg(ap, char *)) {
        assert_true(argc < 15);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;

    assert_int_equal(pipe(pin), 0);
    assert_int_equal(pipe(pout), 0);
    assert_int_equal(pipe(perr), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pin[1]);
        close(pout[0]);
        close(perr[0]);
        child_exec(argv, env, pin[0], pout[1], perr[1]);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    /* Inputs are small (well under a pipe buffer), so one write cannot
     * block on a child that does not read. */
    if (input != NULL && inlen > 0) {
        assert_int_equal(write(pin[1], input, inlen), (ssize_t)inlen);
    }
    close(pin[1]);
    while (open_out || open_err) {
        struct pollfd fds[2] = {
            {.fd = open_out ? pout[0] : -1, .events = POLLIN},
            {.fd = open_err ? perr[0] : -1, .events = POLLIN}};
        uint64_t now = uc_test_now_ms();
        if (now >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("utxocache %s did not finish within 10 s", argv[1]);
        }
        if (poll(fds, 2, (int)(deadline - now)) < 0 && errno != EINTR) {
            break;
        }
        if (fds[0].revents != 0) {
            open_out = drain(pout[0], r->out, sizeof(r->out), &r->outlen);
        }
        if (fds[1].revents != 0) {
            open_err = drain(perr[0], r->err, sizeof(r->err), &r->errlen);
        }
    }
    close(pout[0]);
    close(perr[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The environment pointing at the test's Redis. */
static const char *const *redis_env(void)
{
    static char url[80];
    static const char *env[2];

    snprintf(url, sizeof(url), "REDIS_URL=%s", g_url);
    env[0] = url;
    env[1] = NULL;
    return env;
}

static const char *const memory_env[] = {"UTXOCACHE_BACKEND=memory", NULL};

/* Asserts an error run: status 2 and exactly one line on stderr. */
static void assert_one_line_error(const cli_run_t *r, const char *prefix)
{
    assert_int_equal(r->status, 2);
    assert_true(r->errlen > 0);
    assert_int_equal(r->err[r->errlen - 1], '\n');
    assert_null(memchr(r->err, '\n', r->errlen - 1));
    assert_int_equal(strncmp(r->err, prefix, strlen(prefix)), 0);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (uc_test_redis_start(&g_redis, NULL) != 0) {
        return -1;
    }
    snprintf(g_url, sizeof(g_url), "redis://127.0.0.1:%d/0", g_redis.port);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    uc_test_redis_stop(&g_redis);
    return 0;
}

/* Every test starts from an empty database. */
static int flush(void **state)
{
    char out[64];

    (void)state;
    if (uc_test_redis_cli(&g_redis, NULL, "FLUSHALL", out, sizeof(out)) != 0) {
        return -1;
    }
    return strcmp(out, "OK") == 0 ? 0 : -1;
}

static void test_set_get_roundtrip(void **state)
{
    cli_run_t *r = &g_run;
    char out[64];

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "set", "greeting", "hello world", NULL);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->errlen, 0);

    run_cli(r, redis_env(), NULL, 0, "get", "greeting", NULL);
    assert_int_equal(r->status, 0);
    /* Raw value, no newline added. */
    assert_int_equal(r->outlen, 11);
    assert_memory_equal(r->out, "hello world", 11);

    /* What the CLI stored is what Redis holds. */
    assert_int_equal(
        uc_test_redis_cli(&g_redis, NULL, "GET greeting", out, sizeof(out)), 0);
    assert_string_equal(out, "hello world");
}

static void test_get_miss(void **state)
{
    cli_run_t *r = &g_run;

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "get", "absent", NULL);
    assert_int_equal(r->status, 1);
    assert_int_equal(r->outlen, 0);
    assert_int_equal(r->errlen, 0);
}

static void test_set_from_stdin_binary(void **state)
{
    static const char value[] = "line one\nline\0two\r\n\xff\x01";
    cli_run_t *r = &g_run;

    (void)state;
    run_cli(r, redis_env(), value, sizeof(value) - 1, "set", "bin", "-", NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, redis_env(), NULL, 0, "get", "bin", NULL);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->outlen, sizeof(value) - 1);
    assert_memory_equal(r->out, value, sizeof(value) - 1);
}

static long parse_out_long(const cli_run_t *r)
{
    char *end = NULL;
    long v;

    assert_true(r->outlen > 0);
    errno = 0;
    v = strtol(r->out, &end, 10);
    assert_int_equal(errno, 0);
    assert_string_equal(end, "\n");
    return v;
}

static void test_ttl(void **state)
{
    cli_run_t *r = &g_run;
    long ttl;

    (void)state;
    /* pttl in ms, ttl in seconds (rounded to the nearest, as Redis'). */
    run_cli(r, redis_env(), NULL, 0, "set", "k1", "v", "--px", "60000", NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, redis_env(), NULL, 0, "pttl", "k1", NULL);
    assert_int_equal(r->status, 0);
    ttl = parse_out_long(r);
    assert_true(ttl > 0 && ttl <= 60000);
    run_cli(r, redis_env(), NULL, 0, "ttl", "k1", NULL);
    assert_int_equal(r->status, 0);
    ttl = parse_out_long(r);
    assert_true(ttl > 0 && ttl <= 60);

    run_cli(r, redis_env(), NULL, 0, "set", "--ttl=100", "k2", "v", NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, redis_env(), NULL, 0, "ttl", "k2", NULL);
    ttl = parse_out_long(r);
    assert_true(ttl > 60 && ttl <= 100);
    run_cli(r, redis_env(), NULL, 0, "pttl", "k2", NULL);
    ttl = parse_out_long(r);
    assert_true(ttl > 60000 && ttl <= 100000);

    run_cli(r, redis_env(), NULL, 0, "set", "k3", "v", NULL);
    run_cli(r, redis_env(), NULL, 0, "ttl", "k3", NULL);
    assert_int_equal(r->status, 0);
    assert_int_equal(parse_out_long(r), -1);
    run_cli(r, redis_env(), NULL, 0, "pttl", "k3", NULL);
    assert_int_equal(parse_out_long(r), -1);

    run_cli(r, redis_env(), NULL, 0, "ttl", "absent", NULL);
    assert_int_equal(r->status, 1);
    assert_int_equal(r->outlen, 0);
}

/* --json for get, ttl and pttl: one object a line; a miss is null, exit 1;
 * bytes that are not UTF-8 come back as base64, never altered. */
static void test_json(void **state)
{
    cli_run_t *r = &g_run;
    static const char bin[] = {'a', (char)0xff, 'b'};

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "set", "j", "say \"hi\"\n", "--ttl", "50",
            NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, redis_env(), NULL, 0, "get", "--json", "j", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(
        r->out, "{\"key\": \"j\", \"value\": \"say \\\"hi\\\"\\u000a\"}\n");
    run_cli(r, redis_env(), NULL, 0, "get", "absent", "--json", NULL);
    assert_int_equal(r->status, 1);
    assert_string_equal(r->out, "{\"key\": \"absent\", \"value\": null}\n");
    run_cli(r, redis_env(), bin, sizeof(bin), "set", "b", "-", NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, redis_env(), NULL, 0, "get", "b", "--json", NULL);
    assert_string_equal(r->out,
                        "{\"key\": \"b\", \"value_base64\": \"Yf9i\"}\n");
    run_cli(r, redis_env(), NULL, 0, "ttl", "j", "--json", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "{\"key\": \"j\", \"ttl_s\": 50}\n");
    run_cli(r, redis_env(), NULL, 0, "pttl", "absent", "--json", NULL);
    assert_int_equal(r->status, 1);
    assert_string_equal(r->out, "{\"key\": \"absent\", \"ttl_ms\": null}\n");
    run_cli(r, redis_env(), NULL, 0, "del", "j", "--json", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "utxocache: del takes no --json\n"));
}

/* keys PATTERN lists by SCAN, below the prefix and without it. */
static void test_keys(void **state)
{
    static const char *const env_p[] = {NULL,
                                        "UTXOCACHE_KEY_PREFIX=app1:", NULL};
    const char *env[3];
    cli_run_t *r = &g_run;

    (void)state;
    memcpy(env, env_p, sizeof(env));
    env[0] = redis_env()[0];
    run_cli(r, redis_env(), NULL, 0, "set", "feedback:stats:i1", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "feedback:stats:i2", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "backfill:job:j1", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "odd\nkey", "x", NULL);
    run_cli(r, env, NULL, 0, "set", "feedback:stats:other", "x", NULL);

    run_cli(r, redis_env(), NULL, 0, "keys", "feedback:stats:*", NULL);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->outlen, strlen("feedback:stats:i1\n") * 2);
    assert_non_null(strstr(r->out, "feedback:stats:i1\n"));
    assert_non_null(strstr(r->out, "feedback:stats:i2\n"));
    run_cli(r, redis_env(), NULL, 0, "keys", "odd*", NULL);
    assert_string_equal(r->out, "odd\\x0akey\n");
    run_cli(r, redis_env(), NULL, 0, "keys", "nothing:*", NULL);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->outlen, 0);

    /* Under a prefix, only its keys, and shown without it. */
    run_cli(r, env, NULL, 0, "keys", "feedback:*", "--json", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out,
                        "[\n  {\"key\": \"feedback:stats:other\"}\n]\n");

    run_cli(r, memory_env, NULL, 0, "keys", "*", NULL);
    assert_one_line_error(r, "utxocache: keys: needs Redis");
    run_cli(r, redis_env(), NULL, 0, "keys", NULL);
    assert_int_equal(r->status, 2);
}

/*
 * The target on the command line, as redis-cli takes it: -u URL, -h/-p/-n
 * (host 127.0.0.1 by default), over the environment; the password only from
 * a file or the environment (-a is refused, naming why).
 */
static void test_target_options(void **state)
{
    uc_test_redis_t auth;
    static char port[16], url[96], pwfile[600], nopw[96];
    char dir[512];
    const char *env_nopw[2] = {nopw, NULL};
    cli_run_t *r = &g_run;
    FILE *f;

    (void)state;
    assert_int_equal(uc_test_redis_start(&auth, "requirepass s3cr3t-pw\n"), 0);
    snprintf(port, sizeof(port), "%d", auth.port);
    snprintf(url, sizeof(url), "redis://:s3cr3t-pw@127.0.0.1:%d/2", auth.port);
    snprintf(nopw, sizeof(nopw), "REDIS_PASSWORD=s3cr3t-pw");
    assert_int_equal(uc_test_mkdtemp(dir, sizeof(dir), "cli"), 0);
    snprintf(pwfile, sizeof(pwfile), "%s/pw", dir);
    f = fopen(pwfile, "w");
    assert_non_null(f);
    fputs("s3cr3t-pw\n", f);
    fclose(f);

    /* -u wins over REDIS_URL (which points at the shared test Redis); a
     * password in it is warned about. */
    run_cli(r, redis_env(), NULL, 0, "-u", url, "set", "t", "via-u", NULL);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->err, "warning: a password in -u"));
    assert_null(strstr(r->err, "s3cr3t-pw"));
    run_cli(r, redis_env(), NULL, 0, "get", "t", "--url", url, NULL);
    assert_string_equal(r->out, "via-u");

    /* -p and -n with --password-file (or =PATH), and with REDIS_PASSWORD. */
    run_cli(r, NULL, NULL, 0, "-p", port, "-n", "2", "--password-file", pwfile,
            "get", "t", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "via-u");
    run_cli(r, NULL, "s3cr3t-pw\n", 10, "-h", "127.0.0.1", "-p", port, "-n2",
            "--password-file=-", "get", "t", NULL);
    assert_string_equal(r->out, "via-u");
    run_cli(r, env_nopw, NULL, 0, "get", "t", "-p", port, "-n", "2", NULL);
    assert_string_equal(r->out, "via-u");
    run_cli(r, NULL, NULL, 0, "-p", port, "get", "t", NULL);
    assert_one_line_error(r, "utxocache: get 't': authentication failed");

    /* What is refused, and why. */
    run_cli(r, NULL, NULL, 0, "-a", "s3cr3t-pw", "get", "t", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "-a: a password on the command line"));
    assert_null(strstr(r->err, "s3cr3t-pw"));
    run_cli(r, NULL, NULL, 0, "-u", url, "-p", port, "ping", NULL);
    assert_non_null(strstr(r->err, "give -u or -h/-p/-n, not both"));
    run_cli(r, NULL, NULL, 0, "-p", "0", "ping", NULL);
    assert_non_null(strstr(r->err, "-p: '0' is not a port"));
    snprintf(pwfile, sizeof(pwfile), "%s/absent", dir);
    run_cli(r, NULL, NULL, 0, "-p", port, "--password-file", pwfile, "ping",
            NULL);
    assert_one_line_error(r, "utxocache: --password-file '");
    uc_test_rmtree(dir);
    uc_test_redis_stop(&auth);
}

static void test_short_px_expires(void **state)
{
    cli_run_t *r = &g_run;
    uint64_t deadline;

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "set", "brief", "v", "--px", "50", NULL);
    assert_int_equal(r->status, 0);
    /* Bounded wait for the expiry to be visible through the CLI. */
    deadline = uc_test_now_ms() + 3000;
    do {
        run_cli(r, redis_env(), NULL, 0, "get", "brief", NULL);
        if (r->status == 1) {
            break;
        }
        uc_test_sleep_ms(20);
    } while (uc_test_now_ms() < deadline);
    assert_int_equal(r->status, 1);
}

static void test_exists_and_del(void **state)
{
    cli_run_t *r = &g_run;

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "exists", "k", NULL);
    assert_int_equal(r->status, 1);
    assert_string_equal(r->out, "0\n");

    run_cli(r, redis_env(), NULL, 0, "set", "k", "v", NULL);
    run_cli(r, redis_env(), NULL, 0, "exists", "k", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "1\n");

    run_cli(r, redis_env(), NULL, 0, "del", "k", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "1\n");
    run_cli(r, redis_env(), NULL, 0, "del", "k", NULL);
    assert_int_equal(r->status, 1);
    assert_string_equal(r->out, "0\n");
    run_cli(r, redis_env(), NULL, 0, "exists", "k", NULL);
    assert_int_equal(r->status, 1);
}

static void test_key_prefix(void **state)
{
    static char url[80];
    const char *env[3];
    cli_run_t *r = &g_run;
    char out[64];

    (void)state;
    snprintf(url, sizeof(url), "REDIS_URL=%s", g_url);
    env[0] = url;
    env[1] = "UTXOCACHE_KEY_PREFIX=app:";
    env[2] = NULL;
    run_cli(r, env, NULL, 0, "set", "k", "prefixed", NULL);
    assert_int_equal(r->status, 0);
    assert_int_equal(
        uc_test_redis_cli(&g_redis, NULL, "GET app:k", out, sizeof(out)), 0);
    assert_string_equal(out, "prefixed");
    /* Without the prefix the CLI does not see the key. */
    run_cli(r, redis_env(), NULL, 0, "get", "k", NULL);
    assert_int_equal(r->status, 1);
    run_cli(r, env, NULL, 0, "get", "k", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "prefixed");
}

static void test_invalidate_pattern(void **state)
{
    cli_run_t *r = &g_run;

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "set", "a:1", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "a:2", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "b:1", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "invalidate", "a:*", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "2\n");
    run_cli(r, redis_env(), NULL, 0, "exists", "a:1", NULL);
    assert_int_equal(r->status, 1);
    run_cli(r, redis_env(), NULL, 0, "exists", "b:1", NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, redis_env(), NULL, 0, "invalidate", "a:*", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "0\n");
}

static void test_invalidate_keyspace(void **state)
{
    cli_run_t *r = &g_run;

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "set", "feedback:stats:i1", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "feedback:stats:i2", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "feedback:stats:i3", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "backfill:job:j1", "x", NULL);

    run_cli(r, redis_env(), NULL, 0, "invalidate", "--keyspace",
            "feedback_stats", "insight_id=i1", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "1\n");
    run_cli(r, redis_env(), NULL, 0, "exists", "feedback:stats:i1", NULL);
    assert_int_equal(r->status, 1);
    run_cli(r, redis_env(), NULL, 0, "exists", "feedback:stats:i2", NULL);
    assert_int_equal(r->status, 0);

    /* No field: the whole keyspace, and nothing of another one. */
    run_cli(r, redis_env(), NULL, 0, "invalidate", "--keyspace",
            "feedback_stats", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "2\n");
    run_cli(r, redis_env(), NULL, 0, "exists", "backfill:job:j1", NULL);
    assert_int_equal(r->status, 0);

    run_cli(r, redis_env(), NULL, 0, "invalidate", "--keyspace", "nosuch",
            NULL);
    assert_one_line_error(r, "utxocache: invalidate 'nosuch': ");
    run_cli(r, redis_env(), NULL, 0, "invalidate", "--keyspace",
            "feedback_stats", "job_id=1", NULL);
    assert_one_line_error(r, "utxocache: invalidate 'job_id=1': ");
}

static void test_stats(void **state)
{
    static char ttl_env[] = "UTXOCACHE_TTL_FEEDBACK_STATS=77";
    const char *env[3];
    cli_run_t *r = &g_run;

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "set", "feedback:stats:a", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "feedback:stats:b", "x", NULL);
    run_cli(r, redis_env(), NULL, 0, "set", "backfill:job:c", "x", NULL);
    env[0] = redis_env()[0];
    env[1] = ttl_env;
    env[2] = NULL;
    run_cli(r, env, NULL, 0, "stats", NULL);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "backend                  redis\n"));
    assert_non_null(strstr(r->out, "version                  7."));
    assert_non_null(strstr(r->out, "\n  keys                             3\n"));
    /* Key count and TTL after the UTXOCACHE_TTL_* override. */
    assert_non_null(strstr(r->out, "\n  feedback_stats                   2"
                                   "       77\n"));
    assert_non_null(strstr(r->out, "\n  backfill_job                     1"
                                   "      300\n"));

    run_cli(r, env, NULL, 0, "stats", "--json", NULL);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "\"backend\": \"redis\""));
    assert_non_null(
        strstr(r->out, "\"feedback_stats\": {\"keys\": 2, \"ttl_s\": 77}"));
    assert_int_equal(r->out[0], '{');
    assert_string_equal(r->out + r->outlen - 2, "}\n");
}

static void test_ping(void **state)
{
    cli_run_t *r = &g_run;

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "ping", NULL);
    assert_int_equal(r->status, 0);
    assert_int_equal(strncmp(r->out, "pong ", 5), 0);
    assert_non_null(strstr(r->out, " ms\n"));
}

static void test_bad_ttl_override(void **state)
{
    const char *env[3];
    cli_run_t *r = &g_run;

    (void)state;
    env[0] = redis_env()[0];
    env[1] = "UTXOCACHE_TTL_BACKFILL_JOB=soon";
    env[2] = NULL;
    run_cli(r, env, NULL, 0, "ping", NULL);
    assert_one_line_error(r, "utxocache: config: ");
    assert_non_null(strstr(r->err, "UTXOCACHE_TTL_BACKFILL_JOB"));
}

/* Nothing listens on the port: every command fails with status 2, one
 * line, and the password in the URL never shows. */
static void test_connection_refused(void **state)
{
    static char url[96];
    const char *env[2];
    cli_run_t *r = &g_run;

    (void)state;
    snprintf(url, sizeof(url),
             "REDIS_URL=redis://op:hunter2secret@127.0.0.1:%d/0",
             uc_test_free_port());
    env[0] = url;
    env[1] = NULL;
    run_cli(r, env, NULL, 0, "get", "k", NULL);
    assert_one_line_error(r, "utxocache: get 'k': ");
    assert_null(strstr(r->err, "hunter2secret"));
    assert_int_equal(r->outlen, 0);

    run_cli(r, env, NULL, 0, "set", "k", "v", NULL);
    assert_one_line_error(r, "utxocache: set 'k': ");
    run_cli(r, env, NULL, 0, "exists", "k", NULL);
    assert_one_line_error(r, "utxocache: exists 'k': ");
    run_cli(r, env, NULL, 0, "ping", NULL);
    assert_one_line_error(r, "utxocache: ping: ");
    run_cli(r, env, NULL, 0, "stats", NULL);
    assert_one_line_error(r, "utxocache: stats: ");
    assert_null(strstr(r->err, "hunter2secret"));
}

static void test_auth(void **state)
{
    uc_test_redis_t auth;
    static char good[96], bad[96];
    const char *env[2] = {NULL, NULL};
    cli_run_t *r = &g_run;

    (void)state;
    assert_int_equal(uc_test_redis_start(&auth, "requirepass s3cr3t-pw\n"), 0);
    snprintf(good, sizeof(good), "REDIS_URL=redis://:s3cr3t-pw@127.0.0.1:%d",
             auth.port);
    snprintf(bad, sizeof(bad), "REDIS_URL=redis://:wr0ng-pw@127.0.0.1:%d",
             auth.port);
    env[0] = bad;
    run_cli(r, env, NULL, 0, "get", "k", NULL);
    assert_one_line_error(r, "utxocache: get 'k': ");
    assert_null(strstr(r->err, "wr0ng-pw"));

    env[0] = good;
    run_cli(r, env, NULL, 0, "set", "k", "v", NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, env, NULL, 0, "get", "k", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "v");
    uc_test_redis_stop(&auth);
}

static void test_usage_errors(void **state)
{
    cli_run_t *r = &g_run;

    (void)state;
    /* One line naming the problem, one pointing to --help. */
    run_cli(r, memory_env, NULL, 0, NULL);
    assert_int_equal(r->status, 2);
    assert_string_equal(r->err, "utxocache: missing command\n"
                                "try 'utxocache --help'\n");
    run_cli(r, memory_env, NULL, 0, "get", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "get needs exactly one KEY"));
    run_cli(r, memory_env, NULL, 0, "get", "k", "--bogus=1", NULL);
    assert_string_equal(r->err, "utxocache: unknown option '--bogus=1'\n"
                                "try 'utxocache --help'\n");
    run_cli(r, memory_env, NULL, 0, "-x", "ping", NULL);
    assert_non_null(strstr(r->err, "unknown option '-x'"));
    run_cli(r, memory_env, NULL, 0, "set", "k", "v", "--ttl", NULL);
    assert_non_null(strstr(r->err, "--ttl needs a value"));
    run_cli(r, memory_env, NULL, 0, "get", "a", "b", NULL);
    assert_int_equal(r->status, 2);
    run_cli(r, memory_env, NULL, 0, "set", "k", NULL);
    assert_int_equal(r->status, 2);
    run_cli(r, memory_env, NULL, 0, "frobnicate", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "unknown command 'frobnicate'"));
    run_cli(r, memory_env, NULL, 0, "get", "k", "--ttl", "5", NULL);
    assert_int_equal(r->status, 2);
    run_cli(r, memory_env, NULL, 0, "set", "k", "v", "--ttl", "-1", NULL);
    assert_int_equal(r->status, 2);
    run_cli(r, memory_env, NULL, 0, "set", "k", "v", "--ttl", "1", "--px", "1",
            NULL);
    assert_int_equal(r->status, 2);
    run_cli(r, memory_env, NULL, 0, "stats", "--bogus", NULL);
    assert_int_equal(r->status, 2);
    run_cli(r, memory_env, NULL, 0, "invalidate", NULL);
    assert_int_equal(r->status, 2);
    /* Bad usage never reaches stdout. */
    assert_int_equal(r->outlen, 0);

    run_cli(r, memory_env, NULL, 0, "--help", NULL);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "usage: utxocache"));
    run_cli(r, memory_env, NULL, 0, "-h", NULL);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "usage: utxocache"));
    run_cli(r, memory_env, NULL, 0, "--version", NULL);
    assert_int_equal(r->status, 0);
    assert_int_equal(strncmp(r->out, "utxocache 0.", 12), 0);
    assert_non_null(strstr(r->out, "(libutxocache 0."));
}

/* A key starting with '-' is reachable after "--". */
static void test_dash_key(void **state)
{
    cli_run_t *r = &g_run;

    (void)state;
    run_cli(r, redis_env(), NULL, 0, "set", "--", "-odd", "v", NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, redis_env(), NULL, 0, "get", "--", "-odd", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "v");
}

/*
 * The memory backend lives in the CLI process, so each run starts empty:
 * only what one run can show is checked here.
 */
static void test_memory_backend(void **state)
{
    cli_run_t *r = &g_run;

    (void)state;
    run_cli(r, memory_env, NULL, 0, "ping", NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, memory_env, NULL, 0, "set", "k", "v", NULL);
    assert_int_equal(r->status, 0);
    run_cli(r, memory_env, NULL, 0, "get", "k", NULL);
    assert_int_equal(r->status, 1);
    run_cli(r, memory_env, NULL, 0, "invalidate", "*", NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, "0\n");
    run_cli(r, memory_env, NULL, 0, "stats", NULL);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "backend                  memory\n"));
}

int main(void)
{
    const struct CMUnitTest redis_tests[] = {
        cmocka_unit_test_setup(test_set_get_roundtrip, flush),
        cmocka_unit_test_setup(test_get_miss, flush),
        cmocka_unit_test_setup(test_set_from_stdin_binary, flush),
        cmocka_unit_test_setup(test_ttl, flush),
        cmocka_unit_test_setup(test_json, flush),
        cmocka_unit_test_setup(test_keys, flush),
        cmocka_unit_test_setup(test_target_options, flush),
        cmocka_unit_test_setup(test_short_px_expires, flush),
        cmocka_unit_test_setup(test_exists_and_del, flush),
        cmocka_unit_test_setup(test_key_prefix, flush),
        cmocka_unit_test_setup(test_invalidate_pattern, flush),
        cmocka_unit_test_setup(test_invalidate_keyspace, flush),
        cmocka_unit_test_setup(test_stats, flush),
        cmocka_unit_test_setup(test_ping, flush),
        cmocka_unit_test_setup(test_bad_ttl_override, flush),
        cmocka_unit_test_setup(test_dash_key, flush),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_memory_backend),
    };

    return cmocka_run_group_tests_name("cli", redis_tests, group_setup,
                                       group_teardown);
}
