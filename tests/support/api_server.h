/* SPDX-License-Identifier: MIT */
/*
 * Test support: the real utxoiq-api binary as a child process, on a free
 * loopback port, with a database URL of the test's choice (a fresh SQLite
 * file in a temporary directory by default, or a PostgreSQL URL from
 * pg_server.h) and extra environment (REDIS_URL, ...). It is started, waited
 * for on /healthz (bounded) and stopped with SIGTERM, whose exit status the
 * test can check. HTTP goes through libcurl, one easy handle per server so
 * that keep-alive is exercised. Nothing here is shared between threads.
 * UC_TEST_SERVER_WRAPPER (e.g. "valgrind --error-exitcode=99") runs the
 * binary under that command, with longer start and stop deadlines.
 */
#ifndef UC_TEST_API_SERVER_H
#define UC_TEST_API_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#define UC_TEST_API_ENV_MAX 16

typedef struct {
    pid_t pid; /* 0 when not running */
    int port;
    char dir[512];     /* temporary directory: database file, server log */
    char db_url[1024]; /* what DATABASE_URL is set to */
    char log[600];     /* the server's stderr */
    char env[UC_TEST_API_ENV_MAX][512]; /* "NAME=value" given at start */
    size_t nenv;
    void *curl; /* CURL *, reused for keep-alive */
} uc_test_api_t;

/*
 * Starts the server. db_url NULL: a fresh SQLite file in the temporary
 * directory, or, when UC_TEST_DB=postgresql (uc_test_pg_selected()), a
 * fresh database on the test process's PostgreSQL. env: NULL-terminated
 * "NAME=value" strings set for the child (may be NULL). Waits up to 10 s for
 * /healthz. Returns 0, or -1 after printing why (and the server log) to stderr.
 */
int uc_test_api_start(uc_test_api_t *a, const char *db_url,
                      const char *const *env);

/*
 * Stops the server with SIGTERM (SIGKILL after 30 s, past its own 10 s
 * drain) and returns its exit
 * status (0 after a clean drain), or -1 when it was killed or not running.
 * Keeps the directory and the database, so uc_test_api_restart() can follow.
 */
int uc_test_api_stop(uc_test_api_t *a);

/* Stops the running server, if any, and starts it again on a new port with
 * the same database; env replaces the environment given before when not
 * NULL. Returns 0 when the new server is healthy and the one stopped exited
 * 0, -1 otherwise (the new one still runs when only the old one failed). */
int uc_test_api_restart(uc_test_api_t *a, const char *const *env);

/* Stops the server if it runs and removes its directory. */
void uc_test_api_destroy(uc_test_api_t *a);

/*
 * Runs `utxoiq-api keys create --user U --role R` against the server's
 * database and writes the printed key to key. Returns 0 or -1.
 */
int uc_test_api_key(uc_test_api_t *a, const char *user, const char *role,
                    char *key, size_t cap);

/*
 * Runs `utxoiq-api args...` (args NULL-terminated, without the program
 * name) against the server's database, which need not be running; its
 * stdout goes to out and its stderr to err (both NUL-terminated, cut to
 * fit). Returns the exit status, or -1 when it could not run or was killed.
 */
int uc_test_api_cli(uc_test_api_t *a, const char *const *args, char *out,
                    size_t out_cap, char *err, size_t err_cap);

/* One key a test group needs: who, with which role, and where it goes. */
typedef struct {
    const char *user;
    const char *role;
    char *key;
    size_t cap;
} uc_test_api_user_t;

/* uc_test_api_key for each of users[0..n); stops at the first failure.
 * Returns 0 or -1. */
int uc_test_api_keys(uc_test_api_t *a, const uc_test_api_user_t *users,
                     size_t n);

typedef struct {
    long status;
    char *body; /* NUL-terminated, malloc()ed */
    size_t len;
    char etag[80];
    char x_cache[16];
    char x_cache_tier[16]; /* X-Cache-Tier: near or redis, "" when absent */
    char age[24];          /* Age (seconds, sent with X-Cache: STALE) */
    char cache_control[80];
    char allow[80];
    char content_type[80];
    long connects;      /* new connections opened by this request */
    char headers[4096]; /* every header line as received (truncated) */
    size_t hlen;
} uc_test_http_t;

/* The value of header `name` (case-insensitive) of an answer, trimmed, in
 * out; 1 when the answer has it, 0 (out "") when not. */
int uc_test_http_header(const uc_test_http_t *r, const char *name, char *out,
                        size_t cap);

/*
 * One request. key: sent as "Authorization: Bearer <key>" when it does not
 * start with "X:"; "X:<key>" sends it as X-API-Key instead; NULL sends none.
 * body: sent as-is with Content-Type: application/json when not NULL.
 * extra_header: "Name: value" lines separated by '\n', or NULL. Returns 0 when
 * an HTTP answer arrived (status in out->status), -1 otherwise. Release with
 * uc_test_http_release().
 */
int uc_test_http(uc_test_api_t *a, const char *method, const char *path,
                 const char *key, const char *body, size_t body_len,
                 const char *extra_header, uc_test_http_t *out);

void uc_test_http_release(uc_test_http_t *r);

#endif
