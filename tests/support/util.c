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
