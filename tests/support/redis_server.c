/* SPDX-License-Identifier: MIT */
/*
 * Test support: runs a real redis-server of the test's own. The server gets
 * a temporary directory with its config, log and (unused) dump file, binds
 * only 127.0.0.1 on a port nothing else holds, and saves nothing. Readiness
 * is a PING answered through hiredis, with a bounded wait.
 */
#include "redis_server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "util.h"

/* dir/<stem><ext>, or dir/<stem>-<port><ext> in a shared directory. */
static void file_path(const uc_test_redis_t *r, const char *stem,
                      const char *ext, char *buf, size_t len)
{
    if (r->shared_dir) {
        snprintf(buf, len, "%s/%s-%d%s", r->dir, stem, r->port, ext);
    } else {
        snprintf(buf, len, "%s/%s%s", r->dir, stem, ext);
    }
}

static int write_config(const uc_test_redis_t *r)
{
    char path[600];
    char log[600];
    char dump[64];
    FILE *f;

    file_path(r, "redis", ".conf", path, sizeof(path));
    file_path(r, "redis", ".log", log, sizeof(log));
    /* Only the name: redis-server puts it in `dir`. A replica writes the
     * copy it syncs there even with `save ""`, so servers sharing a
     * directory need names of their own. */
    if (r->shared_dir) {
        snprintf(dump, sizeof(dump), "dump-%d.rdb", r->port);
    } else {
        snprintf(dump, sizeof(dump), "dump.rdb");
    }
    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\ndbfilename %s\n"
            "save \"\"\nappendonly no\ndaemonize no\n"
            "enable-debug-command local\n%s\n",
            r->port, r->dir, log, dump, r->extra);
    return fclose(f) == 0 ? 0 : -1;
}

static int answers_ping(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *reply;
    int ok = 0;

    if (c == NULL) {
        return 0;
    }
    if (c->err == 0) {
        redisSetTimeout(c, tv);
        reply = redisCommand(c, "PING");
        /* A LOADING error means the server is up but not ready yet. */
        ok = reply != NULL && reply->type == REDIS_REPLY_STATUS;
        if (reply == NULL && c->err == 0) {
            ok = 0;
        }
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
            strstr(reply->str, "NOAUTH") != NULL) {
            ok = 1; /* password-protected and up */
        }
        freeReplyObject(reply);
    }
    redisFree(c);
    return ok;
}

static int spawn(uc_test_redis_t *r)
{
    char conf[600];
    char log[600];
    uint64_t deadline;
    int status;

    file_path(r, "redis", ".conf", conf, sizeof(conf));
    file_path(r, "redis", ".log", log, sizeof(log));
    r->pid = fork();
    if (r->pid < 0) {
        r->pid = 0;
        return -1;
    }
    if (r->pid == 0) {
        execlp("redis-server", "redis-server", conf, (char *)NULL);
        fprintf(stderr, "exec redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    deadline = uc_test_now_ms() + 5000;
    while (uc_test_now_ms() < deadline) {
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            fprintf(stderr, "redis-server exited early; see %s\n", log);
            r->pid = 0;
            return -1;
        }
        if (answers_ping(r->port)) {
            return 0;
        }
        uc_test_sleep_ms(10);
    }
    fprintf(stderr, "redis-server did not answer PING within 5 s\n");
    uc_test_redis_kill(r);
    return -1;
}

int uc_test_redis_start(uc_test_redis_t *r, const char *extra_conf)
{
    memset(r, 0, sizeof(*r));
    if (extra_conf != NULL) {
        if (strlen(extra_conf) >= sizeof(r->extra)) {
            return -1;
        }
        memcpy(r->extra, extra_conf, strlen(extra_conf) + 1);
    }
    if (uc_test_mkdtemp(r->dir, sizeof(r->dir), "redis") != 0) {
        perror("mkdtemp");
        return -1;
    }
    /* A port can be taken between probe and bind; try a few. */
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = uc_test_free_port();
        if (r->port > 0 && write_config(r) == 0 && spawn(r) == 0) {
            return 0;
        }
    }
    uc_test_rmtree(r->dir);
    r->dir[0] = '\0';
    return -1;
}

int uc_test_redis_start_at(uc_test_redis_t *r, const char *dir, int port,
                           const char *extra_conf)
{
    memset(r, 0, sizeof(*r));
    r->shared_dir = 1;
    r->port = port;
    if (extra_conf != NULL) {
        if (strlen(extra_conf) >= sizeof(r->extra)) {
            return -1;
        }
        memcpy(r->extra, extra_conf, strlen(extra_conf) + 1);
    }
    if (strlen(dir) >= sizeof(r->dir)) {
        return -1;
    }
    memcpy(r->dir, dir, strlen(dir) + 1);
    if (write_config(r) != 0 || spawn(r) != 0) {
        r->dir[0] = '\0';
        return -1;
    }
    return 0;
}

int uc_test_redis_signal(uc_test_redis_t *r, int sig)
{
    if (r->pid <= 0) {
        return -1;
    }
    return kill(r->pid, sig);
}

static void reap(uc_test_redis_t *r, unsigned wait_ms)
{
    uint64_t deadline = uc_test_now_ms() + wait_ms;
    int status;

    while (uc_test_now_ms() < deadline) {
        pid_t p = waitpid(r->pid, &status, WNOHANG);
        if (p == r->pid || (p < 0 && errno == ECHILD)) {
            r->pid = 0;
            return;
        }
        uc_test_sleep_ms(5);
    }
}

void uc_test_redis_kill(uc_test_redis_t *r)
{
    if (r->pid <= 0) {
        return;
    }
    kill(r->pid, SIGCONT); /* a stopped process must be able to die */
    kill(r->pid, SIGKILL);
    reap(r, 5000);
}

void uc_test_redis_stop(uc_test_redis_t *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGCONT);
        kill(r->pid, SIGTERM);
        reap(r, 2000);
        if (r->pid > 0) {
            uc_test_redis_kill(r);
        }
    }
    if (r->dir[0] != '\0' && !r->shared_dir) {
        uc_test_rmtree(r->dir);
    }
    r->dir[0] = '\0';
}

int uc_test_redis_restart(uc_test_redis_t *r)
{
    uc_test_redis_kill(r);
    return spawn(r);
}

int uc_test_redis_cli_reply(uc_test_redis_t *r, const char *auth_args,
                            const char *command, char *out, size_t outlen)
{
    char cmd[4096];
    char line[1024] = "";
    FILE *p;
    int status;
    size_t n;

    snprintf(cmd, sizeof(cmd), "redis-cli -h 127.0.0.1 -p %d %s %s 2>&1",
             r->port, auth_args != NULL ? auth_args : "", command);
    p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }
    if (fgets(line, sizeof(line), p) == NULL) {
        line[0] = '\0';
    }
    while (fgetc(p) != EOF) {
    }
    status = pclose(p);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    if (out != NULL && outlen > 0) {
        snprintf(out, outlen, "%s", line);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * 1 when line is an error reply as redis-cli prints it without a terminal:
 * the error code (an upper-case word Redis puts first) and then a space or
 * nothing. "AUTH failed:" is redis-cli's own line for a refused --pass.
 */
static int is_error_reply(const char *line)
{
    static const char *const codes[] = {
        "ERR",      "WRONGTYPE",  "NOAUTH",     "WRONGPASS", "NOPERM",
        "LOADING",  "OOM",        "BUSY",       "BUSYKEY",   "NOSCRIPT",
        "READONLY", "MISCONF",    "MASTERDOWN", "EXECABORT", "NOREPLICAS",
        "NOTBUSY",  "UNKILLABLE", "NOPROTO",    "CROSSSLOT", "CLUSTERDOWN",
        "TRYAGAIN", "MOVED",      "ASK",        "UNBLOCKED", "NOGOODSLAVE",
    };
    if (strncmp(line, "AUTH failed", 11) == 0) {
        return 1;
    }
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        size_t n = strlen(codes[i]);
        if (strncmp(line, codes[i], n) == 0 &&
            (line[n] == ' ' || line[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

int uc_test_redis_cli(uc_test_redis_t *r, const char *auth_args,
                      const char *command, char *out, size_t outlen)
{
    char line[1024] = "";
    int rc = uc_test_redis_cli_reply(r, auth_args, command, line, sizeof(line));

    if (out != NULL && outlen > 0) {
        snprintf(out, outlen, "%s", line);
    }
    if (rc == 0 && is_error_reply(line)) {
        fprintf(stderr, "redis-cli %s: %s\n", command, line);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "redis-cli %s: exit status %d: %s\n", command, rc,
                line);
    }
    return rc;
}
