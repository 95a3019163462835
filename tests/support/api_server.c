/* SPDX-License-Identifier: MIT */
/*
 * Test support: runs the real utxoiq-api binary as a child process and talks
 * to it over HTTP with libcurl (see api_server.h).
 */
#include "api_server.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg_server.h"
#include "util.h"

#ifndef UC_API_BINARY
#define UC_API_BINARY "utxoiq-api"
#endif

extern char **environ;

static const char *binary(void)
{
    const char *b = getenv("UC_API_BINARY");
    return b != NULL && b[0] != '\0' ? b : UC_API_BINARY;
}

/*
 * Builds the child's environment: the parent's, minus anything that would
 * point the server at a cache or database the test did not choose, plus the
 * test's own variables. Returns a malloc()ed array the caller frees (the
 * strings are borrowed or live in `own`).
 */
static char **child_env(uc_test_api_t *a, char own[4][1100])
{
    size_t n = 0;
    for (char **e = environ; *e != NULL; e++) {
        n++;
    }
    char **env = calloc(n + a->nenv + 8, sizeof(*env));
    size_t k = 0;
    if (env == NULL) {
        return NULL;
    }
    for (char **e = environ; *e != NULL; e++) {
        if (strncmp(*e, "REDIS_", 6) == 0 || strncmp(*e, "DB_", 3) == 0 ||
            strncmp(*e, "DATABASE_URL=", 13) == 0 ||
            strncmp(*e, "UTXOCACHE_", 10) == 0 ||
            strncmp(*e, "PORT=", 5) == 0 ||
            strncmp(*e, "LISTEN_ADDR=", 12) == 0 ||
            strncmp(*e, "UTXOIQ_", 7) == 0) {
            continue;
        }
        env[k++] = *e;
    }
    snprintf(own[0], sizeof(own[0]), "DATABASE_URL=%s", a->db_url);
    snprintf(own[1], sizeof(own[1]), "PORT=%d", a->port);
    snprintf(own[2], sizeof(own[2]), "LISTEN_ADDR=127.0.0.1");
    snprintf(own[3], sizeof(own[3]), "UTXOIQ_ALLOW_ROOT=1");
    for (int i = 0; i < 4; i++) {
        env[k++] = own[i];
    }
    for (size_t i = 0; i < a->nenv; i++) {
        env[k++] = a->env[i];
    }
    env[k] = NULL;
    return env;
}

#define WRAPPER_MAX_WORDS 16
#define WRAPPER_MAX_LEN 1024

/*
 * UC_TEST_SERVER_WRAPPER, e.g. "valgrind --error-exitcode=99 --quiet", runs
 * the server under a tool: its words are put before the binary's argv, and
 * its first word is executed (looked up in PATH). The wrapper keeps the
 * server's PID (valgrind runs the program in its own process), so signals
 * and the exit status still belong to the server. Splits the variable into
 * words (at spaces; no quoting) in buf and fills words; returns how many,
 * 0 when unset, empty or too long.
 */
static size_t wrapper_words(char buf[WRAPPER_MAX_LEN],
                            char *words[WRAPPER_MAX_WORDS])
{
    const char *w = getenv("UC_TEST_SERVER_WRAPPER");
    size_t n = 0;
    if (w == NULL || strlen(w) >= WRAPPER_MAX_LEN) {
        return 0;
    }
    snprintf(buf, WRAPPER_MAX_LEN, "%s", w);
    for (char *p = buf; *p != '\0' && n < WRAPPER_MAX_WORDS;) {
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
    return n;
}

/* How long a started server may take to answer /healthz: far longer under a
 * wrapper such as valgrind, which runs the program many times slower. */
static uint64_t start_budget_ms(void)
{
    char buf[WRAPPER_MAX_LEN];
    char *words[WRAPPER_MAX_WORDS];
    return wrapper_words(buf, words) > 0 ? 60000 : 10000;
}

/* How long a server may take to exit after SIGTERM: its own drain waits up
 * to 10 s for requests in flight before it closes the cache and the
 * database, so the bound must be above that (and far above it under a
 * wrapper). */
static uint64_t stop_budget_ms(void)
{
    char buf[WRAPPER_MAX_LEN];
    char *words[WRAPPER_MAX_WORDS];
    return wrapper_words(buf, words) > 0 ? 60000 : 30000;
}

/* fork + exec of the binary with args (under UC_TEST_SERVER_WRAPPER when
 * set); stdout to out_fd and stderr to err_fd (each -1: the log). */
static pid_t spawn(uc_test_api_t *a, char *const *argv, int out_fd, int err_fd)
{
    char own[4][1100];
    char **env = child_env(a, own);
    pid_t pid;
    if (env == NULL) {
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        char buf[WRAPPER_MAX_LEN];
        char *words[WRAPPER_MAX_WORDS + 16];
        size_t n = wrapper_words(buf, words);
        int log = open(a->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log >= 0) {
            dup2(err_fd >= 0 ? err_fd : log, 2);
            dup2(out_fd >= 0 ? out_fd : log, 1);
        }
        if (n > 0) {
            words[n++] = (char *)binary();
            for (size_t i = 1; argv[i] != NULL && n < WRAPPER_MAX_WORDS + 15;
                 i++) {
                words[n++] = argv[i];
            }
            words[n] = NULL;
            environ = env;
            execvp(words[0], words);
            fprintf(stderr, "exec %s: %s\n", words[0], strerror(errno));
            _exit(127);
        }
        execve(binary(), argv, env);
        fprintf(stderr, "exec %s: %s\n", binary(), strerror(errno));
        _exit(127);
    }
    free(env);
    return pid;
}

static void print_log(const uc_test_api_t *a)
{
    char line[1024];
    FILE *f = fopen(a->log, "r");
    if (f == NULL) {
        return;
    }
    fprintf(stderr, "---- utxoiq-api log (%s) ----\n", a->log);
    while (fgets(line, sizeof(line), f) != NULL) {
        fputs(line, stderr);
    }
    fclose(f);
}

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* 1 when GET /healthz answers 200. */
static int healthy(int port)
{
    char url[64];
    long code = 0;
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return 0;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 500L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_easy_cleanup(c);
    return code == 200;
}

/* Starts the child and waits for /healthz; 0, or -1 when it exited. */
static int launch(uc_test_api_t *a)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        char *argv[] = {(char *)binary(), (char *)"serve", NULL};
        a->port = uc_test_free_port();
        a->pid = spawn(a, argv, -1, -1);
        if (a->pid <= 0) {
            a->pid = 0;
            return -1;
        }
        uint64_t deadline = uc_test_now_ms() + start_budget_ms();
        int status;
        while (uc_test_now_ms() < deadline) {
            if (waitpid(a->pid, &status, WNOHANG) == a->pid) {
                a->pid = 0;
                break; /* exited: maybe the port was taken; try another */
            }
            if (healthy(a->port)) {
                return 0;
            }
            uc_test_sleep_ms(20);
        }
        if (a->pid != 0) {
            kill(a->pid, SIGKILL);
            waitpid(a->pid, &status, 0);
            a->pid = 0;
            break;
        }
    }
    fprintf(stderr, "utxoiq-api did not become healthy\n");
    print_log(a);
    return -1;
}

static void set_env(uc_test_api_t *a, const char *const *env)
{
    a->nenv = 0;
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        if (a->nenv < UC_TEST_API_ENV_MAX) {
            snprintf(a->env[a->nenv++], sizeof(a->env[0]), "%s", env[i]);
        }
    }
}

int uc_test_api_start(uc_test_api_t *a, const char *db_url,
                      const char *const *env)
{
    memset(a, 0, sizeof(*a));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (uc_test_mkdtemp(a->dir, sizeof(a->dir), "api") != 0) {
        fprintf(stderr, "mkdtemp failed\n");
        return -1;
    }
    snprintf(a->log, sizeof(a->log), "%s/server.log", a->dir);
    if (db_url != NULL) {
        snprintf(a->db_url, sizeof(a->db_url), "%s", db_url);
    } else if (uc_test_pg_selected()) {
        /* The *_pg CTest entries: an empty PostgreSQL database instead. */
        if (uc_test_pg_fresh_db(a->db_url, sizeof(a->db_url)) != 0) {
            return -1;
        }
    } else {
        snprintf(a->db_url, sizeof(a->db_url), "sqlite:%s/api.db", a->dir);
    }
    set_env(a, env);
    return launch(a);
}

int uc_test_api_stop(uc_test_api_t *a)
{
    int status = 0;
    if (a->curl != NULL) {
        curl_easy_cleanup(a->curl);
        a->curl = NULL;
    }
    if (a->pid <= 0) {
        return -1;
    }
    kill(a->pid, SIGTERM);
    uint64_t deadline = uc_test_now_ms() + stop_budget_ms();
    for (;;) {
        pid_t w = waitpid(a->pid, &status, WNOHANG);
        if (w == a->pid) {
            break;
        }
        if (uc_test_now_ms() > deadline) {
            kill(a->pid, SIGKILL);
            waitpid(a->pid, &status, 0);
            a->pid = 0;
            fprintf(stderr,
                    "utxoiq-api did not exit within %llu ms of "
                    "SIGTERM; killed\n",
                    (unsigned long long)stop_budget_ms());
            print_log(a);
            return -1;
        }
        uc_test_sleep_ms(10);
    }
    a->pid = 0;
    if (!WIFEXITED(status)) {
        fprintf(stderr, "utxoiq-api died of signal %d\n",
                WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        print_log(a);
        return -1;
    }
    if (WEXITSTATUS(status) != 0) {
        fprintf(stderr, "utxoiq-api exited %d\n", WEXITSTATUS(status));
        print_log(a);
    }
    return WEXITSTATUS(status);
}

int uc_test_api_restart(uc_test_api_t *a, const char *const *env)
{
    int stopped = 0;
    if (a->pid > 0) {
        stopped = uc_test_api_stop(a);
        if (stopped != 0) {
            fprintf(stderr, "utxoiq-api exited with status %d, not 0\n",
                    stopped);
            print_log(a);
        }
    }
    if (env != NULL) {
        set_env(a, env);
    }
    if (launch(a) != 0) {
        return -1;
    }
    return stopped == 0 ? 0 : -1;
}

void uc_test_api_destroy(uc_test_api_t *a)
{
    if (a->pid > 0) {
        uc_test_api_stop(a);
    }
    if (a->curl != NULL) {
        curl_easy_cleanup(a->curl);
        a->curl = NULL;
    }
    if (a->dir[0] != '\0') {
        uc_test_rmtree(a->dir);
        a->dir[0] = '\0';
    }
}

int uc_test_api_key(uc_test_api_t *a, const char *user, const char *role,
                    char *key, size_t cap)
{
    int fds[2];
    char buf[256];
    size_t got = 0;
    int status;
    char *argv[] = {
        (char *)binary(), (char *)"keys",   (char *)"create", (char *)"--user",
        (char *)user,     (char *)"--role", (char *)role,     NULL};
    if (pipe(fds) != 0) {
        return -1;
    }
    pid_t pid = spawn(a, argv, fds[1], -1);
    close(fds[1]);
    if (pid <= 0) {
        close(fds[0]);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fds[0], buf + got, sizeof(buf) - 1 - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        if (got == sizeof(buf) - 1) {
            break;
        }
    }
    close(fds[0]);
    waitpid(pid, &status, 0);
    buf[got] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl != NULL) {
        *nl = '\0';
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || buf[0] == '\0' ||
        strlen(buf) >= cap) {
        fprintf(stderr, "keys create failed\n");
        print_log(a);
        return -1;
    }
    memcpy(key, buf, strlen(buf) + 1);
    return 0;
}

/* Reads fd to its end into buf (NUL-terminated, cut at cap - 1). */
static void read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    char sink[512];
    for (;;) {
        char *dst = got + 1 < cap ? buf + got : sink;
        size_t room = got + 1 < cap ? cap - 1 - got : sizeof(sink);
        ssize_t r = read(fd, dst, room);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        if (dst == buf + got) {
            got += (size_t)r;
        }
    }
    buf[got] = '\0';
}

int uc_test_api_cli(uc_test_api_t *a, const char *const *args, char *out,
                    size_t out_cap, char *err, size_t err_cap)
{
    char *argv[32];
    char err_path[600];
    size_t n = 0;
    int fds[2];
    int status;
    argv[n++] = (char *)binary();
    for (size_t i = 0; args[i] != NULL && n < 31; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    snprintf(err_path, sizeof(err_path), "%s/cli.err", a->dir);
    int efd = open(err_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (efd < 0) {
        return -1;
    }
    if (pipe(fds) != 0) {
        close(efd);
        return -1;
    }
    pid_t pid = spawn(a, argv, fds[1], efd);
    close(fds[1]);
    if (pid <= 0) {
        close(fds[0]);
        close(efd);
        return -1;
    }
    read_all(fds[0], out, out_cap);
    close(fds[0]);
    waitpid(pid, &status, 0);
    lseek(efd, 0, SEEK_SET);
    read_all(efd, err, err_cap);
    close(efd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int uc_test_api_keys(uc_test_api_t *a, const uc_test_api_user_t *users,
                     size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (uc_test_api_key(a, users[i].user, users[i].role, users[i].key,
                            users[i].cap) != 0) {
            return -1;
        }
    }
    return 0;
}

typedef struct {
    char *p;
    size_t len;
} acc_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    acc_t *acc = arg;
    size_t add = size * n;
    char *np = realloc(acc->p, acc->len + add + 1);
    if (np == NULL) {
        return 0;
    }
    memcpy(np + acc->len, p, add);
    acc->p = np;
    acc->len += add;
    acc->p[acc->len] = '\0';
    return add;
}

static void header_value(const char *line, size_t len, const char *name,
                         char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':') {
        return;
    }
    const char *v = line + nl + 1;
    size_t vl = len - nl - 1;
    while (vl > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) {
        vl--;
    }
    if (vl >= cap) {
        vl = cap - 1;
    }
    memcpy(dst, v, vl);
    dst[vl] = '\0';
}

int uc_test_http_header(const uc_test_http_t *r, const char *name, char *out,
                        size_t cap)
{
    const char *p = r->headers;

    out[0] = '\0';
    while (*p != '\0') {
        const char *e = strchr(p, '\n');
        size_t len = e != NULL ? (size_t)(e - p) + 1 : strlen(p);
        size_t nl = strlen(name);
        if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            header_value(p, len, name, out, cap);
            return 1;
        }
        p += len;
    }
    return 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    uc_test_http_t *out = arg;
    size_t len = size * n;
    if (out->hlen + len < sizeof(out->headers)) {
        memcpy(out->headers + out->hlen, p, len);
        out->hlen += len;
        out->headers[out->hlen] = '\0';
    }
    header_value(p, len, "ETag", out->etag, sizeof(out->etag));
    header_value(p, len, "X-Cache", out->x_cache, sizeof(out->x_cache));
    header_value(p, len, "X-Cache-Tier", out->x_cache_tier,
                 sizeof(out->x_cache_tier));
    header_value(p, len, "Age", out->age, sizeof(out->age));
    header_value(p, len, "Cache-Control", out->cache_control,
                 sizeof(out->cache_control));
    header_value(p, len, "Allow", out->allow, sizeof(out->allow));
    header_value(p, len, "Content-Type", out->content_type,
                 sizeof(out->content_type));
    return len;
}

int uc_test_http(uc_test_api_t *a, const char *method, const char *path,
                 const char *key, const char *body, size_t body_len,
                 const char *extra_header, uc_test_http_t *out)
{
    char url[2048];
    char auth[256];
    struct curl_slist *hdrs = NULL;
    acc_t acc = {NULL, 0};
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    if (a->curl == NULL) {
        a->curl = curl_easy_init();
        if (a->curl == NULL) {
            return -1;
        }
    }
    CURL *c = a->curl;
    curl_easy_reset(c);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", a->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &acc);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    if (key != NULL) {
        if (strncmp(key, "X:", 2) == 0) {
            snprintf(auth, sizeof(auth), "X-API-Key: %s", key + 2);
        } else {
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        }
        hdrs = curl_slist_append(hdrs, auth);
    }
    for (const char *h = extra_header; h != NULL && *h != '\0';) {
        const char *e = strchr(h, '\n');
        size_t l = e != NULL ? (size_t)(e - h) : strlen(h);
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)l, h);
        hdrs = curl_slist_append(hdrs, line);
        h = e != NULL ? e + 1 : h + l;
    }
    if (body != NULL) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        hdrs = curl_slist_append(hdrs, "Expect:");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        fprintf(stderr, "%s %s: %s\n", method, path, curl_easy_strerror(rc));
        free(acc.p);
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &out->connects);
    out->body = acc.p != NULL ? acc.p : strdup("");
    out->len = acc.len;
    return 0;
}

void uc_test_http_release(uc_test_http_t *r)
{
    free(r->body);
    r->body = NULL;
}
