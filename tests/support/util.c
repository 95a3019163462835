/* SPDX-License-Identifier: MIT */
/*
 * Test support: free loopback ports, temporary directories and time. Kept
 * apart from the servers so that unit tests can use it without them.
 */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int uc_test_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

int uc_test_mkdtemp(char *buf, size_t len, const char *tag)
{
    const char *base = getenv("UC_TEST_TMPDIR");
    int n;

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    /* CTest gives a per-build directory that may not exist yet. */
    if (mkdir(base, 0755) != 0 && errno != EEXIST) {
        base = "/tmp";
    }
    n = snprintf(buf, len, "%s/uc-%s-XXXXXX", base, tag != NULL ? tag : "t");
    if (n < 0 || (size_t)n >= len) {
        return -1;
    }
    return mkdtemp(buf) != NULL ? 0 : -1;
}

void uc_test_rmtree(const char *dir)
{
    pid_t pid;
    int status;

    if (dir == NULL || dir[0] == '\0') {
        return;
    }
    pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

uint64_t uc_test_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t uc_test_now_ms(void)
{
    return uc_test_now_us() / 1000u;
}

void uc_test_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

uint64_t uc_test_manual_clock(void *arg)
{
    return atomic_load((_Atomic uint64_t *)arg);
}

static const uc_keyspace_def_t test_keyspaces[] = {
    {.name = "feedback_stats",
     .pattern = "feedback:stats:{insight_id}",
     .ttl_s = 3600},
    {.name = "backfill_job", .pattern = "backfill:job:{job_id}", .ttl_s = 300},
    {.name = "recent_metrics",
     .pattern = "metrics:{service}:{metric_type}:recent",
     .ttl_s = 300},
    {.name = "aggregated_metrics",
     .pattern = "metrics:{service}:{metric_type}:agg:{interval}:{start}:{end}",
     .ttl_s = 3600},
};

const uc_keyspace_def_t *uc_test_keyspaces(size_t *n)
{
    *n = sizeof(test_keyspaces) / sizeof(test_keyspaces[0]);
    return test_keyspaces;
}

typedef struct {
    uc_test_loader_fn fn;
    void *arg;
} shim_t;

static int shim_load(void *arg, const char *const *fields, size_t nfields,
                     char **val, size_t *len)
{
    const shim_t *sh = arg;
    (void)fields;
    (void)nfields;
    return sh->fn(sh->arg, val, len);
}

int uc_test_get_or_load(uc_keyspace_t *ks, const char *const *fields,
                        size_t nfields, uc_test_loader_fn loader, void *arg,
                        uc_validator_fn validator, void *validator_arg,
                        char **val, size_t *len, uc_source_t *src)
{
    shim_t sh = {loader, arg};
    uc_load_opts_t opts = UC_LOAD_OPTS_INIT;
    uc_load_result_t r;
    int rc;

    opts.loader = loader != NULL ? shim_load : NULL;
    opts.loader_arg = &sh;
    opts.validator = validator;
    opts.validator_arg = validator_arg;
    rc = uc_keyspace_get_or_load(ks, fields, nfields, &opts, &r);
    if (rc == UC_OK) {
        *val = r.data;
        *len = r.len;
        if (src != NULL) {
            *src = r.source;
        }
    }
    return rc;
}
