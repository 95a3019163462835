/* SPDX-License-Identifier: MIT */
/*
 * The original Python web-api's database integration tests
 * (tests/compat/original_api_test.py, translated to HTTP calls with their
 * assertions unchanged) against the real utxoiq-api with a Redis of its own,
 * on SQLite and, as the _pg copy, on PostgreSQL. This file is the script's
 * harness: it runs /usr/bin/python3 on the script, bounded in time, and
 * answers the script's requests for a fresh service, which is how the
 * original's clean_database fixture is kept: before each test the script
 * asks for one and gets a new service on a new database, with a new cache
 * key prefix and keys for the users the script names. The script's
 * output (one line per test) is echoed; the test passes when all 22 did
 * and every service stopped cleanly.
 */
#include "api_test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "redis_server.h"
#include "util.h"

#ifndef UC_COMPAT_SCRIPT
#define UC_COMPAT_SCRIPT "tests/compat/original_api_test.py"
#endif
/* Debian's interpreter: the script needs its standard library only. */
#define PYTHON "/usr/bin/python3"
/* The whole run, service restarts included; the script is killed after. */
#define SCRIPT_BUDGET_MS 120000
#define MAX_USERS 16
#define LINE_MAX_LEN 1024

extern char **environ;

static uc_test_redis_t redis;
static uc_test_api_t api;
static unsigned generation;
static int unclean_stops; /* services that did not exit 0 on SIGTERM */

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* a script that died must not kill us */
    return uc_test_redis_start(&redis, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    uc_test_api_destroy(&api);
    uc_test_redis_stop(&redis);
    return 0;
}

/* 1 when s can be a user id the script asks a key for. */
static int user_ok(const char *s, size_t len)
{
    if (len == 0 || len > 64) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.')) {
            return 0;
        }
    }
    return 1;
}

static int add_key(json_t *o, const char *name, const char *user,
                   const char *role)
{
    char key[128];
    if (uc_test_api_key(&api, user, role, key, sizeof(key)) != 0) {
        return -1;
    }
    return json_object_set_new(o, name, json_string(key));
}

/*
 * Stops the service of the previous test, if any, and starts a fresh one:
 * new database (a SQLite file, or a PostgreSQL database under
 * UC_TEST_DB=postgresql), new Redis key prefix, so that nothing a test wrote
 * is seen by the next, in the database or in the cache. users: the ids
 * after "fresh " in the script's request, separated by spaces. Returns the
 * server document (one JSON line, the caller's), or NULL after printing why.
 */
static char *fresh_service(const char *users)
{
    char redis_url[64], prefix[64], url[64];
    const char *env[] = {redis_url, prefix, NULL};
    json_t *doc = NULL;
    json_t *keys = NULL;
    char *line = NULL;

    if (api.pid > 0 && uc_test_api_stop(&api) != 0) {
        unclean_stops++;
    }
    uc_test_api_destroy(&api);
    snprintf(redis_url, sizeof(redis_url), "REDIS_URL=redis://127.0.0.1:%d/0",
             redis.port);
    snprintf(prefix, sizeof(prefix),
             "UTXOCACHE_KEY_PREFIX=compat-%u:", ++generation);
    if (uc_test_api_start(&api, NULL, env) != 0) {
        goto out;
    }
    doc = json_object();
    keys = json_object();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", api.port);
    if (doc == NULL || keys == NULL ||
        json_object_set_new(doc, "base_url", json_string(url)) != 0 ||
        add_key(doc, "admin", "compat-admin", "admin") != 0 ||
        add_key(doc, "service", "compat-service", "service") != 0) {
        goto out;
    }
    size_t n = 0;
    for (const char *p = users; *p != '\0';) {
        char user[65];
        size_t len = strcspn(p, " ");
        if (!user_ok(p, len) || ++n > MAX_USERS) {
            fprintf(stderr, "bad user id in '%s'\n", users);
            goto out;
        }
        memcpy(user, p, len);
        user[len] = '\0';
        if (add_key(keys, user, user, "user") != 0) {
            goto out;
        }
        p += len;
        p += strspn(p, " ");
    }
    if (json_object_set(doc, "users", keys) != 0) {
        goto out;
    }
    line = json_dumps(doc, JSON_COMPACT);
out:
    json_decref(keys);
    json_decref(doc);
    return line;
}

/* Writes all of s to fd; -1 when the script is gone. */
static int write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, s, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        s += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Answers one request line of the script on fd. */
static void answer(int fd, const char *req)
{
    char *doc = NULL;
    if (strncmp(req, "fresh ", 6) == 0) {
        doc = fresh_service(req + 6);
    } else {
        fprintf(stderr, "unknown request '%s'\n", req);
    }
    if (doc == NULL) {
        const char *err = "error: no fresh service (see the test's log)\n";
        write_all(fd, err, strlen(err));
        return;
    }
    write_all(fd, doc, strlen(doc));
    write_all(fd, "\n", 1);
    free(doc);
}

/* The environment of the script: ours, without an UC_COMPAT_SERVER that
 * would point it at a service we did not start, plus the channel. */
static char **script_env(char *ctl)
{
    size_t n = 0;
    for (char **e = environ; *e != NULL; e++) {
        n++;
    }
    char **env = calloc(n + 2, sizeof(*env));
    size_t k = 0;
    if (env == NULL) {
        return NULL;
    }
    for (char **e = environ; *e != NULL; e++) {
        if (strncmp(*e, "UC_COMPAT_", 10) != 0) {
            env[k++] = *e;
        }
    }
    env[k++] = ctl;
    env[k] = NULL;
    return env;
}

static void cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    assert_int_not_equal(fl, -1);
    assert_int_not_equal(fcntl(fd, F_SETFD, fl | FD_CLOEXEC), -1);
}

/* Prints the file at path to stdout. */
static void echo_file(const char *path)
{
    char buf[4096];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("(no output from the script)\n");
        return;
    }
    while (fgets(buf, sizeof(buf), f) != NULL) {
        fputs(buf, stdout);
    }
    fclose(f);
    fflush(stdout);
}

/*
 * Runs the script with the channel on the fds it inherits, its stdout and
 * stderr in a file, and serves its requests until it exits or the budget
 * runs out (then it is killed).
 */
static void test_original_api(void **state)
{
    char dir[512], out_path[600], ctl[64];
    int to_py[2], from_py[2];
    int status = 0;
    const char *killed = NULL; /* why the script was killed */
    (void)state;

    if (access(PYTHON, X_OK) != 0 || access(UC_COMPAT_SCRIPT, R_OK) != 0) {
        fprintf(stderr, "need %s (scripts/install-deps) and %s\n", PYTHON,
                UC_COMPAT_SCRIPT);
        fail();
    }
    assert_int_equal(uc_test_mkdtemp(dir, sizeof(dir), "compat"), 0);
    snprintf(out_path, sizeof(out_path), "%s/script.out", dir);
    assert_int_equal(pipe(to_py), 0);
    assert_int_equal(pipe(from_py), 0);
    /* Our ends stay out of the services and key commands we start. */
    cloexec(to_py[1]);
    cloexec(from_py[0]);
    snprintf(ctl, sizeof(ctl), "UC_COMPAT_CTL=%d,%d", to_py[0], from_py[1]);
    char **env = script_env(ctl);
    assert_non_null(env);
    char *argv[] = {(char *)PYTHON, (char *)UC_COMPAT_SCRIPT, NULL};

    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_int_not_equal(pid, -1);
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (out < 0 || in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(out, 2) < 0) {
            _exit(126);
        }
        if (in > 2) {
            close(in);
        }
        if (out > 2) {
            close(out);
        }
        close(to_py[1]);
        close(from_py[0]);
        execve(PYTHON, argv, env);
        _exit(127);
    }
    free(env);
    close(to_py[0]);
    close(from_py[1]);

    char line[LINE_MAX_LEN];
    size_t used = 0;
    uint64_t deadline = uc_test_now_ms() + SCRIPT_BUDGET_MS;
    for (;;) {
        if (uc_test_now_ms() > deadline) {
            killed = "it did not finish in time";
            break;
        }
        struct pollfd p = {.fd = from_py[0], .events = POLLIN};
        int pr = poll(&p, 1, 200);
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        assert_true(pr >= 0);
        if (pr == 0) {
            continue;
        }
        ssize_t r = read(from_py[0], line + used, sizeof(line) - 1 - used);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break; /* the script exited (or closed the channel) */
        }
        used += (size_t)r;
        line[used] = '\0';
        char *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            answer(to_py[1], line);
            used -= (size_t)(nl + 1 - line);
            memmove(line, nl + 1, used + 1);
        }
        if (used == sizeof(line) - 1) {
            killed = "its request line was too long";
            break;
        }
    }
    close(from_py[0]);
    close(to_py[1]);
    /* After the channel closes the script is on its way out; bound that
     * too, and kill it when the budget ran out. */
    while (killed == NULL && waitpid(pid, &status, WNOHANG) == 0) {
        if (uc_test_now_ms() > deadline) {
            killed = "it did not exit in time";
            break;
        }
        uc_test_sleep_ms(20);
    }
    if (killed != NULL) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }

    printf("---- %s ----\n", UC_COMPAT_SCRIPT);
    echo_file(out_path);
    printf("----\n");
    fflush(stdout); /* before cmocka's verdict on stderr */
    uc_test_rmtree(dir);
    if (api.pid > 0 && uc_test_api_stop(&api) != 0) {
        unclean_stops++;
    }

    if (killed != NULL) {
        fprintf(stderr, "the script was killed: %s (budget %d s)\n", killed,
                SCRIPT_BUDGET_MS / 1000);
    }
    assert_null(killed);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(unclean_stops, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_original_api),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
