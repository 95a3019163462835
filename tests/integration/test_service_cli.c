/* SPDX-License-Identifier: MIT */
/*
 * utxoiq-api as a process: its command line (--help and --version on stdout
 * with exit 0, --opt=value and --opt value, errors that name the option),
 * a busy port that says so, the database URL read from a file or stdin, a
 * password given with --database-url scrubbed from /proc/PID/cmdline, core
 * dumps off unless UTXOIQ_ALLOW_CORE_DUMPS=1 (/proc/PID/limits), the
 * descriptor limit raised to the hard limit, and the signals: SIGHUP,
 * SIGUSR1 and SIGUSR2 change nothing, SIGQUIT drains as SIGTERM does. Every
 * child is the real binary, started here and stopped by its PID.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "api_test.h"
#include "util.h"

#ifndef UC_API_BINARY
#error "UC_API_BINARY must name the utxoiq-api binary"
#endif

#define WAIT_MS 10000

extern char **environ;

static char dir[512];

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return uc_test_mkdtemp(dir, sizeof(dir), "svccli");
}

static int group_teardown(void **state)
{
    (void)state;
    uc_test_rmtree(dir);
    return 0;
}

/* A child of ours: its PID and the files holding its stdout and stderr. */
typedef struct {
    pid_t pid;
    char out[600];
    char err[600];
} child_t;

/*
 * Starts the binary with argv (argv[0] included, NULL-terminated) and the
 * parent's environment minus anything pointing the service elsewhere, plus
 * env (NULL-terminated "NAME=value", may be NULL). stdin from in_path
 * (NULL: /dev/null); stdout and stderr to files named after tag.
 */
static void start(child_t *c, const char *tag, char *const *argv,
                  const char *const *env, const char *in_path)
{
    char *envp[256];
    size_t n = 0;
    snprintf(c->out, sizeof(c->out), "%s/%s.out", dir, tag);
    snprintf(c->err, sizeof(c->err), "%s/%s.err", dir, tag);
    for (char **e = environ; *e != NULL && n < 200; e++) {
        int replaced = 0;
        for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
            size_t k = strcspn(env[i], "=");
            replaced |= strncmp(*e, env[i], k + 1) == 0;
        }
        if (replaced || strncmp(*e, "REDIS_", 6) == 0 ||
            strncmp(*e, "DB_", 3) == 0 ||
            strncmp(*e, "DATABASE_URL=", 13) == 0 ||
            strncmp(*e, "UTXOCACHE_", 10) == 0 ||
            strncmp(*e, "PORT=", 5) == 0 ||
            strncmp(*e, "LISTEN_ADDR=", 12) == 0 ||
            strncmp(*e, "UTXOIQ_", 7) == 0) {
            continue;
        }
        envp[n++] = *e;
    }
    envp[n++] = (char *)"UTXOIQ_ALLOW_ROOT=1";
    envp[n++] = (char *)"UTXOIQ_ACCESS_LOG=0";
    for (size_t i = 0; env != NULL && env[i] != NULL && n < 254; i++) {
        envp[n++] = (char *)env[i];
    }
    envp[n] = NULL;
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        int in = open(in_path != NULL ? in_path : "/dev/null", O_RDONLY);
        int out = open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(c->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0) {
            _exit(126);
        }
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execve(UC_API_BINARY, argv, envp);
        _exit(127);
    }
}

/* Waits for the child to exit, at most ms (then kills it and fails);
 * returns its exit status. */
static int wait_exit(child_t *c, unsigned ms)
{
    uint64_t end = uc_test_now_ms() + ms;
    int st = 0;
    while (waitpid(c->pid, &st, WNOHANG) == 0) {
        if (uc_test_now_ms() > end) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
            c->pid = 0;
            fail_msg("utxoiq-api did not exit within %u ms", ms);
        }
        uc_test_sleep_ms(10);
    }
    c->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The whole of a small file, NUL-terminated, in buf ("" when absent);
 * returns its length. NULs inside (as in /proc/PID/cmdline) become ' '. */
static size_t slurp(const char *path, char *buf, size_t cap)
{
    size_t n = 0;
    int fd = open(path, O_RDONLY);
    buf[0] = '\0';
    if (fd < 0) {
        return 0;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0 || (n += (size_t)r) == cap - 1) {
            break;
        }
    }
    close(fd);
    for (size_t i = 0; i < n; i++) {
        buf[i] = buf[i] == '\0' ? ' ' : buf[i];
    }
    buf[n] = '\0';
    return n;
}

/* 1 when path holds needle within ms. */
static int wait_for_text(const char *path, const char *needle, unsigned ms)
{
    static char buf[65536];
    uint64_t end = uc_test_now_ms() + ms;
    do {
        slurp(path, buf, sizeof(buf));
        if (strstr(buf, needle) != NULL) {
            return 1;
        }
        uc_test_sleep_ms(20);
    } while (uc_test_now_ms() < end);
    fprintf(stderr, "'%s' not found in %s:\n%s\n", needle, path, buf);
    return 0;
}

/* GET /healthz; the status, or -1. */
static int healthz(int port)
{
    static const char req[] =
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    struct sockaddr_in sa;
    struct timeval tv = {2, 0};
    char buf[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0 ||
        (n = recv(fd, buf, sizeof(buf) - 1, 0)) < 12) {
        close(fd);
        return -1;
    }
    close(fd);
    buf[n] = '\0';
    return (int)strtol(buf + 9, NULL, 10);
}

/* Waits until the child answers /healthz on port; fails if it exits. */
static void wait_healthy(child_t *c, int port)
{
    uint64_t end = uc_test_now_ms() + WAIT_MS;
    int st;
    while (healthz(port) != 200) {
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            static char log[8192];
            slurp(c->err, log, sizeof(log));
            c->pid = 0;
            fail_msg("utxoiq-api exited:\n%s", log);
        }
        if (uc_test_now_ms() > end) {
            fail_msg("utxoiq-api not healthy within %d ms", WAIT_MS);
        }
        uc_test_sleep_ms(20);
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- the command line -----------------------------------------------------
 */

static void test_help_version(void **state)
{
    static char out[8192], err[4096];
    child_t c;
    (void)state;
    char *help[] = {(char *)"utxoiq-api", (char *)"--help", NULL};
    start(&c, "help", help, NULL, NULL);
    assert_int_equal(wait_exit(&c, WAIT_MS), 0);
    slurp(c.out, out, sizeof(out));
    slurp(c.err, err, sizeof(err));
    assert_non_null(strstr(out, "usage: utxoiq-api"));
    assert_non_null(strstr(out, "--database-url-file"));
    assert_string_equal(err, "");

    char *version[] = {(char *)"utxoiq-api", (char *)"--version", NULL};
    start(&c, "version", version, NULL, NULL);
    assert_int_equal(wait_exit(&c, WAIT_MS), 0);
    slurp(c.out, out, sizeof(out));
    assert_int_equal(strncmp(out, "utxoiq-api 0.", 13), 0);
    assert_non_null(strstr(out, "(libutxocache 0."));
}

/* Each bad command line: exit 2, nothing on stdout, the cause named. */
static void test_bad_options(void **state)
{
    static char out[4096], err[4096];
    static const struct {
        const char *args[4];
        const char *says;
    } cases[] = {
        {{"--bogus", NULL}, "utxoiq-api: unknown option '--bogus'\n"},
        {{"--bogus=1", NULL}, "unknown option '--bogus=1'"},
        {{"-q", NULL}, "unknown option '-q'"},
        {{"--port", NULL}, "utxoiq-api: --port: missing value\n"},
        {{"--port=0", NULL}, "--port: '0' is not 1 to 65535"},
        {{"--threads", "x", NULL}, "--threads: 'x' is not 1 to 256"},
        {{"frobnicate", NULL}, "unknown command 'frobnicate'"},
        {{"keys", "delete", NULL}, "give create, list, revoke or import"},
        {{"keys", "revoke", NULL}, "keys revoke: give a key id or prefix"},
        {{"keys", "import", NULL}, "keys import: give a file"},
        {{"--database-url=sqlite:a", "--database-url-file", "b", NULL},
         "give one"},
        {{"--database-url-file", "/nonexistent/url", NULL},
         "--database-url-file '/nonexistent/url': No such file"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[8] = {(char *)"utxoiq-api"};
        child_t c;
        for (size_t k = 0; cases[i].args[k] != NULL; k++) {
            argv[k + 1] = (char *)cases[i].args[k];
        }
        start(&c, "bad", argv, NULL, NULL);
        int st = wait_exit(&c, WAIT_MS);
        slurp(c.out, out, sizeof(out));
        slurp(c.err, err, sizeof(err));
        if (strstr(err, cases[i].says) == NULL || st != 2) {
            fprintf(stderr, "case %zu: status %d, stderr:\n%s\n", i, st, err);
        }
        assert_int_equal(st, 2);
        assert_non_null(strstr(err, cases[i].says));
        assert_string_equal(out, "");
    }
}

/*
 * --port=N and --port N, the URL from a file and from stdin; a second
 * service on a busy port exits 1 naming the address and the cause. The test
 * lowers its own soft descriptor limit first: the service raises it again.
 */
static void test_ports_url_file_bind_error(void **state)
{
    static char log[16384];
    char url_file[600], url[700], port_eq[32], port[16], db1[600];
    struct rlimit rl, low;
    child_t a, b, busy;
    (void)state;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    low = rl;
    low.rlim_cur = rl.rlim_max < 1024 ? rl.rlim_max : 1024;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

    snprintf(db1, sizeof(db1), "sqlite:%s/one.db", dir);
    snprintf(url_file, sizeof(url_file), "%s/url", dir);
    snprintf(url, sizeof(url), "%s\n", db1);
    write_file(url_file, url);
    int p1 = uc_test_free_port();
    snprintf(port_eq, sizeof(port_eq), "--port=%d", p1);
    char *argv_a[] = {(char *)"utxoiq-api",          (char *)"serve", port_eq,
                      (char *)"--database-url-file", url_file,        NULL};
    start(&a, "a", argv_a, NULL, NULL);
    wait_healthy(&a, p1);

    int p2 = uc_test_free_port();
    snprintf(port, sizeof(port), "%d", p2);
    char *argv_b[] = {(char *)"utxoiq-api", (char *)"--database-url-file=-",
                      (char *)"--port", port, NULL};
    start(&b, "b", argv_b, NULL, url_file);
    wait_healthy(&b, p2);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);

    /* Same port as b: refused, and the log line says why. */
    char *argv_busy[] = {(char *)"utxoiq-api",          (char *)"--port", port,
                         (char *)"--database-url-file", url_file,         NULL};
    start(&busy, "busy", argv_busy, NULL, NULL);
    assert_int_equal(wait_exit(&busy, WAIT_MS), 1);
    char want[128];
    snprintf(want, sizeof(want), "bind 127.0.0.1:%d: address in use", p2);
    assert_true(wait_for_text(busy.err, want, 0));

    /* Core dumps off by default; the descriptor limit back at the hard
     * limit although the service was started with a soft 1024. */
    slurp(a.err, log, sizeof(log));
    assert_non_null(strstr(log, "core_dumps=off"));
    char fdl[64];
    snprintf(fdl, sizeof(fdl), "fd_limit=%llu",
             (unsigned long long)(rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20
                                                               : rl.rlim_max));
    assert_non_null(strstr(log, fdl));

    kill(a.pid, SIGTERM);
    kill(b.pid, SIGTERM);
    assert_int_equal(wait_exit(&a, WAIT_MS), 0);
    assert_int_equal(wait_exit(&b, WAIT_MS), 0);
}

/* ---- secrets --------------------------------------------------------------
 */

/* "Max core file size" soft and hard limits of a process, as text. */
static void core_limits(pid_t pid, char *soft, char *hard, size_t cap)
{
    static char buf[8192];
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    slurp(path, buf, sizeof(buf));
    const char *p = strstr(buf, "Max core file size");
    assert_non_null(p);
    char s[32] = "", h[32] = "";
    assert_int_equal(sscanf(p + 18, "%31s %31s", s, h), 2);
    snprintf(soft, cap, "%s", s);
    snprintf(hard, cap, "%s", h);
}

/*
 * A password given with --database-url is gone from /proc/PID/cmdline as
 * soon as the arguments are parsed, and a warning points to the file
 * option. The database is a socket that listens and never answers, so the
 * service stays in its connect long enough to be looked at; it is killed
 * then. Core dumps are off in it: RLIMIT_CORE 0 (PR_SET_DUMPABLE 0 has no
 * /proc field to read, and the test runs as root, who reads everything).
 */
static void test_password_scrubbed(void **state)
{
    static char cmdline[8192];
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    char url[256], path[64], soft[32], hard[32];
    child_t c;
    (void)state;

    int l = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 8), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &salen), 0);
    snprintf(url, sizeof(url),
             "postgresql://app:hunter2-db-pw@127.0.0.1:%d/utxoiq",
             ntohs(sa.sin_port));
    char *argv[] = {(char *)"utxoiq-api", (char *)"serve",
                    (char *)"--database-url", url, NULL};
    const char *env[] = {"UTXOIQ_DB_TIMEOUT_MS=20000", NULL};
    start(&c, "pw", argv, env, NULL);
    assert_true(
        wait_for_text(c.err, "--database-url holds a password", WAIT_MS));
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)c.pid);
    slurp(path, cmdline, sizeof(cmdline));
    core_limits(c.pid, soft, hard, sizeof(soft));
    kill(c.pid, SIGKILL);
    waitpid(c.pid, NULL, 0);
    c.pid = 0;
    close(l);
    printf("cmdline: %s\n", cmdline);
    assert_null(strstr(cmdline, "hunter2-db-pw"));
    assert_non_null(strstr(cmdline, "--database-url postgresql://app:***@"));
    assert_string_equal(soft, "0");
    assert_string_equal(hard, "0");
    /* Nor is it in the log. */
    static char log[16384];
    slurp(c.err, log, sizeof(log));
    assert_null(strstr(log, "hunter2-db-pw"));
}

/* A sanitizer's options with disable_coredump=0 appended: the sanitizer
 * runtimes set RLIMIT_CORE to 0 themselves by default, which would hide
 * what the service does. */
static const char *san_opt(char *buf, size_t cap, const char *name)
{
    const char *v = getenv(name);
    snprintf(buf, cap, "%s=%s%sdisable_coredump=0", name, v != NULL ? v : "",
             v != NULL && v[0] != '\0' ? ":" : "");
    return buf;
}

/* UTXOIQ_ALLOW_CORE_DUMPS=1 leaves the inherited core limit alone. */
static void test_core_dumps_allowed(void **state)
{
    static char log[16384], asan[512], tsan[512];
    struct rlimit rl, mine;
    char db[600], arg[640], soft[32], hard[32], want[32];
    child_t c;
    (void)state;

    assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
    mine = rl;
    mine.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1048576
                        ? 1048576
                        : rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_CORE, &mine), 0);
    snprintf(db, sizeof(db), "sqlite:%s/core.db", dir);
    snprintf(arg, sizeof(arg), "--database-url=%s", db);
    int port = uc_test_free_port();
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    char *argv[] = {(char *)"utxoiq-api", arg, (char *)"--port", p, NULL};
    const char *env[] = {"UTXOIQ_ALLOW_CORE_DUMPS=1",
                         san_opt(asan, sizeof(asan), "ASAN_OPTIONS"),
                         san_opt(tsan, sizeof(tsan), "TSAN_OPTIONS"), NULL};
    start(&c, "core", argv, env, NULL);
    setrlimit(RLIMIT_CORE, &rl);
    wait_healthy(&c, port);
    core_limits(c.pid, soft, hard, sizeof(soft));
    snprintf(want, sizeof(want), "%llu", (unsigned long long)mine.rlim_cur);
    assert_string_equal(soft, want);
    slurp(c.err, log, sizeof(log));
    assert_non_null(strstr(log, "core_dumps=allowed"));
    /* A URL without a password is not scrubbed, nor warned about. */
    assert_null(strstr(log, "holds a password"));
    kill(c.pid, SIGTERM);
    assert_int_equal(wait_exit(&c, WAIT_MS), 0);
}

/* ---- signals --------------------------------------------------------------
 */

static void test_signals(void **state)
{
    uc_test_api_t api;
    static char log[65536];
    (void)state;
    assert_int_equal(uc_test_api_start(&api, NULL, NULL), 0);
    const int ignored[] = {SIGHUP, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(kill(api.pid, ignored[i]), 0);
        /* Still the same process, still serving. */
        for (int k = 0; k < 5; k++) {
            assert_int_equal(healthz(api.port), 200);
        }
        assert_int_equal(waitpid(api.pid, NULL, WNOHANG), 0);
    }
    /* SIGQUIT drains and exits 0, as SIGTERM does. */
    assert_int_equal(kill(api.pid, SIGQUIT), 0);
    child_t c = {api.pid, "", ""};
    assert_int_equal(wait_exit(&c, WAIT_MS), 0);
    api.pid = 0;
    slurp(api.log, log, sizeof(log));
    assert_non_null(strstr(log, "msg=draining signal=SIGQUIT"));
    assert_non_null(strstr(log, "msg=stopped"));
    uc_test_api_destroy(&api);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_ports_url_file_bind_error),
        cmocka_unit_test(test_password_scrubbed),
        cmocka_unit_test(test_core_dumps_allowed),
        cmocka_unit_test(test_signals),
    };
    return cmocka_run_group_tests_name("service_cli", tests, group_setup,
                                       group_teardown);
}
