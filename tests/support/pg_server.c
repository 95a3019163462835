/* SPDX-License-Identifier: MIT */
/*
 * Test support: runs a real PostgreSQL of the test's own (the installed
 * major version, found as bindir() says). Every tool
 * (initdb, pg_ctl, psql) runs as a child process with an argv array, never
 * through a shell, and every wait on a child is bounded. When the test runs
 * as root the server-side tools drop to the `postgres` user in the child,
 * since initdb and the postmaster refuse root; the temporary directory is
 * handed to that user first. The superuser is reached only over the unix
 * socket in the temporary directory (trust); the test role logs in over TCP
 * on 127.0.0.1 with a SCRAM password, the way the service does.
 */
#include "pg_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define PG_TOOL_TIMEOUT_MS 60000u
#define PG_START_TIMEOUT_S "30"
#define PG_STOP_TIMEOUT_S "15"

static int join(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int run(char *const argv[], int as_postgres, const char *cwd,
               const char *log, char *out, size_t outlen);

/* 1 when dir holds an executable initdb: the one tool only a server
 * installation has (client packages bring psql and pg_config alone). */
static int has_initdb(const char *dir)
{
    char p[PATH_MAX];
    return dir[0] != '\0' && join(p, sizeof(p), dir, "initdb") == 0 &&
           access(p, X_OK) == 0;
}

/* The first executable `tool` in PATH, written to buf; 0 or -1. */
static int find_on_path(const char *tool, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    char dir[PATH_MAX];

    while (path != NULL && *path != '\0') {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof(dir)) {
            memcpy(dir, path, n);
            dir[n] = '\0';
            if (join(buf, len, dir, tool) == 0 && access(buf, X_OK) == 0) {
                return 0;
            }
        }
        path += n;
        path += *path == ':' ? 1 : 0;
    }
    return -1;
}

/*
 * The directory of the PostgreSQL server binaries, looked up once and
 * whichever major version is installed: UC_PG_BINDIR when set; else where
 * the pg_ctl found in PATH really lives (distributions put symlinks or
 * wrappers in PATH, next to which there is no initdb); else what
 * `pg_config --bindir` says. "" when none of them holds initdb.
 */
static const char *bindir(void)
{
    static char dir[PATH_MAX];
    static int looked;
    const char *env = getenv("UC_PG_BINDIR");
    char tool[PATH_MAX];
    char real[PATH_MAX];

    if (env != NULL && env[0] != '\0') {
        return env;
    }
    if (looked) {
        return dir;
    }
    looked = 1;
    if (find_on_path("pg_ctl", tool, sizeof(tool)) == 0 &&
        realpath(tool, real) != NULL && strrchr(real, '/') != NULL) {
        *strrchr(real, '/') = '\0';
        if (has_initdb(real)) {
            snprintf(dir, sizeof(dir), "%s", real);
            return dir;
        }
    }
    if (find_on_path("pg_config", tool, sizeof(tool)) == 0) {
        char *argv[] = {tool, (char *)"--bindir", NULL};
        if (run(argv, 0, NULL, "/dev/null", real, sizeof(real)) == 0 &&
            has_initdb(real)) {
            snprintf(dir, sizeof(dir), "%s", real);
            return dir;
        }
    }
    return dir;
}

static int tool_path(char *buf, size_t len, const char *tool)
{
    const char *dir = bindir();
    return dir[0] != '\0' ? join(buf, len, dir, tool) : -1;
}

int uc_test_pg_available(void)
{
    return has_initdb(bindir());
}

/* Only root has to switch users; anyone else runs the server as itself. */
static int must_drop_root(void)
{
    return geteuid() == 0;
}

/*
 * In a forked child: become the `postgres` user. Returns 0 or -1; the child
 * exits on -1 since it must not run initdb or the server as root.
 */
static int become_postgres(void)
{
    struct passwd *pw = getpwnam("postgres");

    if (pw == NULL) {
        return -1;
    }
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        return -1;
    }
    setenv("HOME", pw->pw_dir, 1);
    setenv("USER", "postgres", 1);
    return 0;
}

/*
 * Waits for pid until deadline_ms (uc_test_now_ms clock); kills it with
 * SIGKILL when the deadline passes. Returns its exit status, or -1 when it
 * was killed or did not exit normally.
 */
static int wait_child(pid_t pid, uint64_t deadline_ms)
{
    int status = 0;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (uc_test_now_ms() >= deadline_ms) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            return -1;
        }
        uc_test_sleep_ms(5);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Runs argv[0] with argv, as `postgres` when as_postgres and we are root,
 * with the working directory `cwd`. The child's stderr (and its stdout when
 * out == NULL) is appended to `log`; with out != NULL the first line of its
 * stdout is copied there, trimmed. Returns the exit status or -1.
 */
static int run(char *const argv[], int as_postgres, const char *cwd,
               const char *log, char *out, size_t outlen)
{
    uint64_t deadline = uc_test_now_ms() + PG_TOOL_TIMEOUT_MS;
    int pfd[2] = {-1, -1};
    char buf[4096];
    size_t got = 0;
    pid_t pid;

    if (out != NULL && pipe(pfd) != 0) {
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        if (pfd[0] >= 0) {
            close(pfd[0]);
            close(pfd[1]);
        }
        return -1;
    }
    if (pid == 0) {
        int lfd, nfd;
        /* Drop root first so that the log file belongs to its writer. */
        if (as_postgres && must_drop_root() && become_postgres() != 0) {
            _exit(125);
        }
        lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        nfd = open("/dev/null", O_RDONLY);
        if (lfd < 0 || nfd < 0) {
            _exit(126);
        }
        dup2(nfd, STDIN_FILENO);
        dup2(out != NULL ? pfd[1] : lfd, STDOUT_FILENO);
        dup2(lfd, STDERR_FILENO);
        if (pfd[0] >= 0) {
            close(pfd[0]);
            close(pfd[1]);
        }
        /* psql must not wait forever on a frozen server either. */
        setenv("PGCONNECT_TIMEOUT", "10", 1);
        unsetenv("PGPASSWORD");
        unsetenv("PGSERVICE");
        if (cwd != NULL && chdir(cwd) != 0) {
            _exit(124);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (out != NULL) {
        close(pfd[1]);
        for (;;) {
            struct pollfd p = {pfd[0], POLLIN, 0};
            uint64_t now = uc_test_now_ms();
            ssize_t n;
            if (now >= deadline) {
                break;
            }
            if (poll(&p, 1, (int)(deadline - now)) <= 0) {
                if (errno == EINTR) {
                    continue;
                }
                break;
            }
            if (got + 1 >= sizeof(buf)) {
                char sink[512];
                n = read(pfd[0], sink, sizeof(sink)); /* drain, keep first */
            } else {
                n = read(pfd[0], buf + got, sizeof(buf) - 1 - got);
                if (n > 0) {
                    got += (size_t)n;
                }
            }
            if (n == 0 || (n < 0 && errno != EINTR)) {
                break;
            }
        }
        close(pfd[0]);
        buf[got] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        if (outlen > 0) {
            snprintf(out, outlen, "%s", buf);
        }
    }
    return wait_child(pid, deadline);
}

/* Random lowercase hex of len-1 characters: the password and name suffix. */
static int random_hex(char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[32];
    size_t need = len / 2;
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t n;

    if (fd < 0 || len < 2 || need > sizeof(raw)) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    n = read(fd, raw, need);
    close(fd);
    if (n != (ssize_t)need) {
        return -1;
    }
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned v = raw[i / 2];
        buf[i] = hex[(i % 2 == 0) ? (v >> 4) : (v & 15u)];
    }
    buf[len - 1] = '\0';
    return 0;
}

/*
 * True when the `postgres` user can reach dir: every ancestor must be
 * searchable by others. A CTest temp dir under a private home would not be,
 * and initdb would then fail with a confusing permission error.
 */
static int reachable_by_others(const char *dir)
{
    char path[256];
    struct stat st;

    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
        return 0;
    }
    for (;;) {
        char *slash = strrchr(path, '/');
        if (slash == NULL) {
            return 1;
        }
        if (slash == path) {
            slash[1] = '\0';
        } else {
            slash[0] = '\0';
        }
        if (stat(path, &st) != 0 || (st.st_mode & S_IXOTH) == 0) {
            return 0;
        }
        if (slash == path) {
            return 1;
        }
    }
}

/* Creates pg->dir: under UC_TEST_TMPDIR when the postgres user can reach it
 * and the socket path fits, else under /tmp. */
static int make_dir(uc_test_pg_t *pg)
{
    /* sun_path holds the socket "DIR/sock/.s.PGSQL.65535". */
    size_t max_dir = sizeof(((struct sockaddr_un *)0)->sun_path) - 24;
    int n;

    if (uc_test_mkdtemp(pg->dir, sizeof(pg->dir), "pg") == 0) {
        if (strlen(pg->dir) <= max_dir &&
            (!must_drop_root() || reachable_by_others(pg->dir))) {
            return 0;
        }
        rmdir(pg->dir);
    }
    n = snprintf(pg->dir, sizeof(pg->dir), "/tmp/uc-pg-XXXXXX");
    if (n < 0 || (size_t)n >= sizeof(pg->dir) || mkdtemp(pg->dir) == NULL) {
        pg->dir[0] = '\0';
        return -1;
    }
    return 0;
}

/* Hands path to the postgres user when we run as root; 0 or -1. */
static int give_to_postgres(const char *path)
{
    struct passwd *pw;

    if (!must_drop_root()) {
        return 0;
    }
    pw = getpwnam("postgres");
    if (pw == NULL) {
        fprintf(stderr, "pg_server: running as root but no 'postgres' user\n");
        return -1;
    }
    return chown(path, pw->pw_uid, pw->pw_gid);
}

static int write_config(const uc_test_pg_t *pg)
{
    char path[320];
    FILE *f;

    if (join(path, sizeof(path), pg->dir, "data/postgresql.conf") != 0) {
        return -1;
    }
    f = fopen(path, "a");
    if (f == NULL) {
        return -1;
    }
    /*
     * fsync off: surviving a power cut is worthless for a throwaway cluster
     * and costs seconds. synchronous_commit stays on, though: without fsync
     * it costs only a write(), and it makes a commit survive the immediate
     * (crash) stop that uc_test_pg_down does, which the tests rely on.
     */
    fprintf(f,
            "\n# utxocache test server\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = '%s/sock'\n"
            "fsync = off\nsynchronous_commit = on\nfull_page_writes = off\n"
            "max_connections = 60\nshared_buffers = 16MB\n"
            "timezone = 'UTC'\nlog_timezone = 'UTC'\n"
            "password_encryption = 'scram-sha-256'\n",
            pg->dir);
    return fclose(f) == 0 ? 0 : -1;
}

static int ctl(uc_test_pg_t *pg, const char *action)
{
    char pg_ctl[300], data[300], log[300], ctl_log[300], opts[64];
    int rc;

    if (tool_path(pg_ctl, sizeof(pg_ctl), "pg_ctl") != 0 ||
        join(data, sizeof(data), pg->dir, "data") != 0 ||
        join(log, sizeof(log), pg->dir, "server.log") != 0 ||
        join(ctl_log, sizeof(ctl_log), pg->dir, "pg_ctl.log") != 0) {
        return -1;
    }
    snprintf(opts, sizeof(opts), "-p %d", pg->port);
    if (strcmp(action, "start") == 0) {
        char *argv[] = {pg_ctl, "-D",    data, "-l", log,
                        "-o",   opts,    "-w", "-t", PG_START_TIMEOUT_S,
                        "-s",   "start", NULL};
        rc = run(argv, 1, pg->dir, ctl_log, NULL, 0);
    } else {
        char *argv[] = {pg_ctl,      "-D",   data, "-m",
                        "immediate", "-w",   "-t", PG_STOP_TIMEOUT_S,
                        "-s",        "stop", NULL};
        rc = run(argv, 1, pg->dir, ctl_log, NULL, 0);
    }
    return rc == 0 ? 0 : -1;
}

/* The postmaster's pid from data/postmaster.pid, or 0 when there is none. */
static pid_t postmaster_pid(const uc_test_pg_t *pg)
{
    char path[320], line[32];
    long v;
    char *end;
    FILE *f;

    if (join(path, sizeof(path), pg->dir, "data/postmaster.pid") != 0) {
        return 0;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    if (fgets(line, sizeof(line), f) == NULL) {
        fclose(f);
        return 0;
    }
    fclose(f);
    errno = 0;
    v = strtol(line, &end, 10);
    if (errno != 0 || end == line || v <= 1) {
        return 0;
    }
    return (pid_t)v;
}

/* Parent pid of pid from /proc, or 0. */
static pid_t parent_of(pid_t pid)
{
    char path[64], stat_line[512];
    const char *close_paren;
    long ppid;
    char state;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    if (fgets(stat_line, sizeof(stat_line), f) == NULL) {
        fclose(f);
        return 0;
    }
    fclose(f);
    /* The command name may hold spaces and parens; skip to the last ')'. */
    close_paren = strrchr(stat_line, ')');
    if (close_paren == NULL ||
        sscanf(close_paren + 1, " %c %ld", &state, &ppid) != 2) {
        return 0;
    }
    return (pid_t)ppid;
}

int uc_test_pg_signal(uc_test_pg_t *pg, int sig)
{
    pid_t pm = postmaster_pid(pg);
    DIR *d;
    struct dirent *e;
    int count = 0;

    if (pm == 0) {
        return -1;
    }
    /* SIGSTOP on the postmaster alone leaves its backends serving the
     * connections they already hold; a frozen server needs all of them. */
    d = opendir("/proc");
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            char *end;
            long v = strtol(e->d_name, &end, 10);
            if (*end != '\0' || v <= 1) {
                continue;
            }
            if (parent_of((pid_t)v) == pm && kill((pid_t)v, sig) == 0) {
                count++;
            }
        }
        closedir(d);
    }
    if (kill(pm, sig) != 0) {
        return -1;
    }
    return count + 1;
}

int uc_test_pg_psql(const uc_test_pg_t *pg, const char *sql, char *out,
                    size_t outlen)
{
    char psql[300], sock[300], port[16];
    char *argv[] = {psql,
                    "-X",
                    "-q",
                    "-t",
                    "-A",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    sock,
                    "-p",
                    port,
                    "-U",
                    "postgres",
                    "-d",
                    (char *)pg->dbname,
                    "-c",
                    (char *)sql,
                    NULL};
    char log[300];

    if (tool_path(psql, sizeof(psql), "psql") != 0 ||
        join(sock, sizeof(sock), pg->dir, "sock") != 0 ||
        join(log, sizeof(log), pg->dir, "psql.log") != 0) {
        return -1;
    }
    snprintf(port, sizeof(port), "%d", pg->port);
    /* Root may read the socket; running psql as itself keeps the output
     * pipe simple. Trust auth on the socket makes the OS user irrelevant. */
    return run(argv, 0, NULL, log, out, outlen);
}

static void print_log_tail(const uc_test_pg_t *pg, const char *name)
{
    char path[320], line[512];
    FILE *f;

    if (join(path, sizeof(path), pg->dir, name) != 0) {
        return;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    fprintf(stderr, "---- %s ----\n", name);
    while (fgets(line, sizeof(line), f) != NULL) {
        fputs(line, stderr);
    }
    fclose(f);
}

static int create_role_and_db(uc_test_pg_t *pg)
{
    char sql[256];
    char dbname[32];
    int n;

    /* Connect to the maintenance db while the test db does not exist. */
    snprintf(dbname, sizeof(dbname), "%s", pg->dbname);
    snprintf(pg->dbname, sizeof(pg->dbname), "postgres");
    n = snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN PASSWORD '%s'",
                 pg->user, pg->password);
    if (n < 0 || (size_t)n >= sizeof(sql) ||
        uc_test_pg_psql(pg, sql, NULL, 0) != 0) {
        return -1;
    }
    /* CREATE DATABASE cannot share a transaction: a second psql run. */
    n = snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s", dbname,
                 pg->user);
    if (n < 0 || (size_t)n >= sizeof(sql) ||
        uc_test_pg_psql(pg, sql, NULL, 0) != 0) {
        return -1;
    }
    snprintf(pg->dbname, sizeof(pg->dbname), "%s", dbname);
    return 0;
}

int uc_test_pg_start(uc_test_pg_t *pg)
{
    char initdb[300], data[300], sock[300], log[300];
    char suffix[9];
    int n;

    memset(pg, 0, sizeof(*pg));
    if (tool_path(initdb, sizeof(initdb), "initdb") != 0 ||
        access(initdb, X_OK) != 0) {
        fprintf(stderr, "pg_server: no initdb in '%s'\n", bindir());
        return -1;
    }
    if (make_dir(pg) != 0) {
        fprintf(stderr, "pg_server: cannot create a temporary directory\n");
        return -1;
    }
    if (join(data, sizeof(data), pg->dir, "data") != 0 ||
        join(sock, sizeof(sock), pg->dir, "sock") != 0 ||
        join(log, sizeof(log), pg->dir, "initdb.log") != 0 ||
        mkdir(sock, 0700) != 0 || give_to_postgres(pg->dir) != 0 ||
        give_to_postgres(sock) != 0) {
        fprintf(stderr, "pg_server: cannot prepare '%s'\n", pg->dir);
        goto fail;
    }
    if (random_hex(pg->password, 25) != 0 ||
        random_hex(suffix, sizeof(suffix)) != 0) {
        goto fail;
    }
    snprintf(pg->user, sizeof(pg->user), "uc_%s", suffix);
    snprintf(pg->dbname, sizeof(pg->dbname), "uc_test_%s", suffix);
    {
        /* No sync and the C locale: a throwaway cluster in about a second. */
        char *argv[] = {initdb,
                        "-D",
                        data,
                        "-U",
                        "postgres",
                        "-E",
                        "UTF8",
                        "--no-locale",
                        "--no-sync",
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        NULL};
        if (run(argv, 1, pg->dir, log, NULL, 0) != 0) {
            fprintf(stderr, "pg_server: initdb failed\n");
            print_log_tail(pg, "initdb.log");
            goto fail;
        }
    }
    if (write_config(pg) != 0) {
        fprintf(stderr, "pg_server: cannot write postgresql.conf\n");
        goto fail;
    }
    /* The port may be taken between picking and binding: try a few. */
    for (int attempt = 0; attempt < 3 && !pg->running; attempt++) {
        pg->port = uc_test_free_port();
        if (pg->port > 0 && ctl(pg, "start") == 0) {
            pg->running = 1;
        }
    }
    if (!pg->running) {
        fprintf(stderr, "pg_server: pg_ctl start failed\n");
        print_log_tail(pg, "pg_ctl.log");
        print_log_tail(pg, "server.log");
        goto fail;
    }
    if (create_role_and_db(pg) != 0) {
        fprintf(stderr, "pg_server: cannot create role and database\n");
        print_log_tail(pg, "psql.log");
        goto fail;
    }
    n = snprintf(pg->url, sizeof(pg->url), "postgresql://%s:%s@127.0.0.1:%d/%s",
                 pg->user, pg->password, pg->port, pg->dbname);
    if (n < 0 || (size_t)n >= sizeof(pg->url)) {
        goto fail;
    }
    return 0;

fail:
    uc_test_pg_stop(pg);
    return -1;
}

int uc_test_pg_down(uc_test_pg_t *pg)
{
    pid_t pm;

    if (!pg->running) {
        return -1;
    }
    /* A frozen server would not see the stop request. */
    uc_test_pg_signal(pg, SIGCONT);
    pm = postmaster_pid(pg);
    if (ctl(pg, "stop") != 0) {
        if (pm != 0) {
            uc_test_pg_signal(pg, SIGKILL);
        }
    }
    pg->running = 0;
    return 0;
}

int uc_test_pg_up(uc_test_pg_t *pg)
{
    char pidfile[320];

    if (pg->running || pg->dir[0] == '\0') {
        return -1;
    }
    /* A SIGKILLed postmaster leaves its pid file behind; pg_ctl would then
     * refuse to start only if that pid is alive, which it is not. */
    if (join(pidfile, sizeof(pidfile), pg->dir, "data/postmaster.pid") == 0 &&
        postmaster_pid(pg) != 0 && kill(postmaster_pid(pg), 0) != 0) {
        unlink(pidfile);
    }
    if (ctl(pg, "start") != 0) {
        print_log_tail(pg, "server.log");
        return -1;
    }
    pg->running = 1;
    return 0;
}

void uc_test_pg_stop(uc_test_pg_t *pg)
{
    if (pg == NULL) {
        return;
    }
    if (pg->running) {
        uc_test_pg_down(pg);
    }
    if (pg->dir[0] != '\0') {
        uc_test_rmtree(pg->dir);
        pg->dir[0] = '\0';
    }
}

/* The shared server of uc_test_pg_fresh_db and who started it: a forked
 * child that calls exit() must not stop its parent's server. */
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static uc_test_pg_t shared_pg;
static pid_t shared_owner;
static unsigned shared_count;

static void stop_shared(void)
{
    if (shared_owner == getpid()) {
        uc_test_pg_stop(&shared_pg);
    }
}

int uc_test_pg_fresh_db(char *url, size_t cap)
{
    char name[64], sql[160];
    int rc = -1, n;

    pthread_mutex_lock(&shared_mu);
    if (shared_owner == 0) {
        if (uc_test_pg_start(&shared_pg) != 0) {
            goto out;
        }
        shared_owner = getpid();
        atexit(stop_shared);
    }
    snprintf(name, sizeof(name), "%s_%u", shared_pg.dbname, ++shared_count);
    n = snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s", name,
                 shared_pg.user);
    if (n < 0 || (size_t)n >= sizeof(sql) ||
        uc_test_pg_psql(&shared_pg, sql, NULL, 0) != 0) {
        fprintf(stderr, "pg_server: cannot create database '%s'\n", name);
        goto out;
    }
    n = snprintf(url, cap, "postgresql://%s:%s@127.0.0.1:%d/%s", shared_pg.user,
                 shared_pg.password, shared_pg.port, name);
    rc = n > 0 && (size_t)n < cap ? 0 : -1;
out:
    pthread_mutex_unlock(&shared_mu);
    return rc;
}

int uc_test_pg_selected(void)
{
    const char *v = getenv("UC_TEST_DB");
    return v != NULL && (strcmp(v, "postgresql") == 0 ||
                         strcmp(v, "postgres") == 0 || strcmp(v, "pg") == 0);
}
