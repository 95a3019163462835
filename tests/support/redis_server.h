/* SPDX-License-Identifier: MIT */
/*
 * Test support: a real redis-server of the test's own, on a free loopback
 * port in a temporary directory, started and stopped by the test. A test
 * never touches a server it did not start.
 */
#ifndef UC_TEST_REDIS_SERVER_H
#define UC_TEST_REDIS_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid; /* 0 when not running */
    int port;
    char dir[512];    /* temporary directory holding config, log, dump */
    char extra[2048]; /* extra config lines given at start, kept for restart */
    /* 1 when dir is the caller's and shared with other servers: the files
     * carry the port (redis-<port>.conf, .log, dump-<port>.rdb) and stop
     * leaves the directory. */
    int shared_dir;
} uc_test_redis_t;

/*
 * Starts redis-server on 127.0.0.1 at a free port with no persistence and
 * `extra_conf` (may be NULL) appended to its config file ("requirepass x\n").
 * Waits (bounded, 5 s) until it answers PING. Returns 0 or -1 (and prints why
 * to stderr).
 */
int uc_test_redis_start(uc_test_redis_t *r, const char *extra_conf);

/*
 * Starts redis-server like uc_test_redis_start(), but on `port` and in
 * `dir`, a directory the caller made, may share with other servers, and
 * removes itself; for servers that must know each other's ports before
 * they start (a cluster's nodes). One attempt: when the port was taken in
 * the meantime it returns -1 and the caller picks another.
 */
int uc_test_redis_start_at(uc_test_redis_t *r, const char *dir, int port,
                           const char *extra_conf);

/* Stops the server (SIGTERM, then SIGKILL after 2 s) and removes its dir,
 * unless the dir is shared. */
void uc_test_redis_stop(uc_test_redis_t *r);

/* Sends a signal to the server (SIGSTOP, SIGCONT, SIGKILL...). */
int uc_test_redis_signal(uc_test_redis_t *r, int sig);

/* Kills the server (SIGKILL) and waits for it to go. Port stays reserved. */
void uc_test_redis_kill(uc_test_redis_t *r);

/* Starts the server again on the same port with the same config, empty. */
int uc_test_redis_restart(uc_test_redis_t *r);

/*
 * Runs one command through redis-cli against the server (args as for
 * redis-cli, e.g. "CONFIG SET maxmemory 1mb") and writes its first output
 * line (trimmed) to out if out != NULL. Returns 0 only when redis-cli exited
 * 0 and that line is not an error reply (ERR, WRONGTYPE, NOAUTH, OOM,
 * LOADING, NOPERM, BUSY, ...), which redis-cli also exits 0 on; non-zero
 * otherwise, saying why on stderr.
 */
int uc_test_redis_cli(uc_test_redis_t *r, const char *auth_args,
                      const char *command, char *out, size_t outlen);

/*
 * The same for a command whose error reply is the expected outcome (a
 * refused command, the OOM probe): returns redis-cli's exit status alone,
 * and the caller checks the line written to out.
 */
int uc_test_redis_cli_reply(uc_test_redis_t *r, const char *auth_args,
                            const char *command, char *out, size_t outlen);

#endif
