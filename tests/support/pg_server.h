/* SPDX-License-Identifier: MIT */
/*
 * Test support: a real PostgreSQL of the test's own. initdb into a fresh
 * temporary directory (as the `postgres` user when the test runs as root,
 * since initdb refuses root), a postmaster on a free 127.0.0.1 port with its
 * unix socket inside that directory, and one role with a password plus a
 * database it owns, reached over TCP with SCRAM password authentication.
 * The struct is the caller's; nothing in it is shared between threads, so a
 * test drives one server from one thread.
 */
#ifndef UC_TEST_PG_SERVER_H
#define UC_TEST_PG_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    int port;
    int running;       /* 1 between a successful start/up and stop/down */
    char dir[256];     /* temporary directory: data/, sock/, server.log */
    char user[32];     /* role the tests connect as (not a superuser) */
    char password[32]; /* random per server */
    char dbname[32];   /* database owned by `user` */
    char url[256];     /* postgresql://user:password@127.0.0.1:port/dbname */
} uc_test_pg_t;

/* 1 when the PostgreSQL server binaries are installed (UC_PG_BINDIR, or
 * found through pg_ctl in PATH or `pg_config --bindir`), 0 otherwise: tests
 * skip on 0, and `make test` fails on the skip unless UC_TEST_ALLOW_SKIP=1. */
int uc_test_pg_available(void);

/*
 * Creates a cluster and starts it: initdb, config (fsync off, loopback only),
 * pg_ctl start -w with a bounded wait, then the role and the database. Fills
 * every field of *pg. Returns 0, or -1 after printing why to stderr and
 * removing whatever it created. When PostgreSQL is not installed it
 * returns -1 as well; tests skip on that.
 */
int uc_test_pg_start(uc_test_pg_t *pg);

/* Stops the server (immediate mode) if it runs and removes its directory.
 * Accepts a struct whose start failed or that was never started. */
void uc_test_pg_stop(uc_test_pg_t *pg);

/*
 * Takes the database away without losing it: pg_ctl stop -m immediate, which
 * drops every client connection at once; the data directory and the port are
 * kept. Returns 0 or -1.
 */
int uc_test_pg_down(uc_test_pg_t *pg);

/* Starts the server again after uc_test_pg_down, same port and data, and
 * waits (bounded) until it accepts connections. Returns 0 or -1. */
int uc_test_pg_up(uc_test_pg_t *pg);

/*
 * Sends sig to the postmaster and every backend process it has forked, so
 * that SIGSTOP freezes the whole server (open connections included) and
 * SIGCONT resumes it. Returns the number of processes signalled, or -1.
 */
int uc_test_pg_signal(uc_test_pg_t *pg, int sig);

/*
 * Runs one SQL string through psql as the superuser over the server's unix
 * socket, in the test database. Writes the first line of output (unaligned,
 * tuples only, trimmed) to out when out != NULL. Returns psql's exit status
 * (0 on success) or -1 when psql could not run.
 */
int uc_test_pg_psql(const uc_test_pg_t *pg, const char *sql, char *out,
                    size_t outlen);

/*
 * For tests that need many empty databases (one per service started by
 * api_server.c): a server shared by the whole test process, started on the
 * first call and stopped when the process exits, and a new database on it
 * owned by the test role for every call. Writes the new database's URL to
 * url. Returns 0, or -1 after printing why. Safe to call from any thread.
 */
int uc_test_pg_fresh_db(char *url, size_t cap);

/* 1 when the environment asks the HTTP tests to run on PostgreSQL instead
 * of SQLite (UC_TEST_DB=postgresql, set by the *_pg CTest entries). */
int uc_test_pg_selected(void);

#endif
