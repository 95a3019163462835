/* SPDX-License-Identifier: MIT */
/*
 * uc-bench: measures libutxocache against the reference client that ships
 * with Redis, side by side, in one bounded run. It starts its own
 * redis-server (no persistence) on a free loopback port, then runs:
 *
 *   1. N threads of GET, then of SET, with fixed-size values through the
 *      library (a pool of N connections), each for a fixed duration;
 *   2. `redis-benchmark -c N -t set,get` over the same keys and value size;
 *   3. N threads of 16-key multi-gets (uc_cache_mget) against
 *      `redis-benchmark -P 16 -t get`, compared in keys per second;
 *   4. GET and SET through the memory backend with the same threads.
 *
 * Latencies are recorded per operation in a log-linear histogram (64
 * sub-buckets per power of two, so a quantile is exact to within 1.6 %),
 * one per thread, merged at the end. The program prints ratios with their
 * targets; it is a measurement, not a test, and exits 0 unless --check is
 * given and a ratio misses its target, or a run fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "bench_util.h"
#include "utxocache/utxocache.h"

#define MGET_KEYS 16
#define KEY_LEN UC_BENCH_KEY_LEN
#define TARGET_RATIO 0.9
#define THREADS_MAX 1024
#define RB_OUTPUT_MAX (64 * 1024)

/* ---- histogram ---------------------------------------------------------- */

/*
 * How it works: values below 2 * SUB are counted exactly; above, a value v
 * with highest set bit e falls in power-of-two range [2^e, 2^(e+1)), split
 * into SUB equal sub-buckets indexed by the SUB_BITS bits below the top bit.
 * Bucket width is then at most 1/SUB of the value.
 */
#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define HIST_LEN (2 * SUB + (64 - SUB_BITS - 1) * SUB)

typedef struct {
    uint64_t counts[HIST_LEN];
    uint64_t total;
} hist_t;

static unsigned top_bit(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

static size_t hist_index(uint64_t v)
{
    unsigned e;

    if (v < 2 * SUB) {
        return (size_t)v;
    }
    e = top_bit(v);
    return 2 * SUB + (size_t)(e - SUB_BITS - 1) * SUB +
           (size_t)((v >> (e - SUB_BITS)) - SUB);
}

/* Largest value that falls in bucket i. */
static uint64_t hist_upper(size_t i)
{
    size_t e;
    uint64_t m;

    if (i < 2 * SUB) {
        return i;
    }
    e = (i - 2 * SUB) / SUB + SUB_BITS + 1;
    m = SUB + (i - 2 * SUB) % SUB;
    return ((m + 1) << (e - SUB_BITS)) - 1;
}

static void hist_add(hist_t *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->total++;
}

static void hist_merge(hist_t *into, const hist_t *from)
{
    for (size_t i = 0; i < HIST_LEN; i++) {
        into->counts[i] += from->counts[i];
    }
    into->total += from->total;
}

/* Upper bound of the q-quantile (0 < q <= 1); 0 for an empty histogram. */
static uint64_t hist_quantile(const hist_t *h, double q)
{
    uint64_t rank;
    uint64_t seen = 0;

    if (h->total == 0) {
        return 0;
    }
    rank = (uint64_t)((double)h->total * q + 0.5);
    if (rank < 1) {
        rank = 1;
    }
    for (size_t i = 0; i < HIST_LEN; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            return hist_upper(i);
        }
    }
    return hist_upper(HIST_LEN - 1);
}

/* ---- small helpers ------------------------------------------------------ */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u,
                          .tv_nsec = (long)(ms % 1000u) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void complain(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void complain(const char *fmt, ...)
{
    va_list ap;

    fputs("uc-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
}

/* ---- redis-server of our own -------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
    char dir[64];
} server_t;

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

/* Opens a cache on the bench's Redis with n connections. */
static int open_redis(int port, int n, uc_cache_t **out)
{
    uc_config_t cfg = UC_CONFIG_INIT;
    char err[256];
    int rc;

    cfg.backend = UC_BACKEND_REDIS;
    memcpy(cfg.host, "127.0.0.1", sizeof("127.0.0.1"));
    cfg.port = port;
    cfg.max_connections = n;
    /* A saturated 2-core box can stall a reply for a while; a timeout here
     * would be counted as an error and distort the figures. */
    cfg.connect_timeout_ms = 2000;
    cfg.command_timeout_ms = 2000;
    cfg.acquire_timeout_ms = 2000;
    /* UTXOCACHE_PIPELINE_MAX=0 shows the library without auto-pipelining. */
    const char *pm = getenv("UTXOCACHE_PIPELINE_MAX");
    if (pm != NULL && pm[0] != '\0') {
        int v = atoi(pm);
        cfg.pipeline_max = v > 0 ? v : -1;
    }
    err[0] = '\0';
    rc = uc_cache_create(&cfg, out, err, sizeof(err));
    if (rc != UC_OK) {
        complain("open cache: %s", err[0] != '\0' ? err : uc_strerror(rc));
    }
    return rc;
}

static void server_stop(server_t *s)
{
    char path[128];

    if (s->pid > 0) {
        int st;
        kill(s->pid, SIGTERM);
        for (int i = 0; i < 200 && waitpid(s->pid, &st, WNOHANG) == 0; i++) {
            sleep_ms(10);
        }
        if (kill(s->pid, 0) == 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
        }
        s->pid = 0;
    }
    if (s->dir[0] != '\0') {
        snprintf(path, sizeof(path), "%s/redis.log", s->dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/dump.rdb", s->dir);
        unlink(path);
        rmdir(s->dir);
        s->dir[0] = '\0';
    }
}

/* Starts redis-server and waits (at most 5 s) until it answers PING. */
static int server_start_once(server_t *s, const char *exe)
{
    char portbuf[16];
    uint64_t deadline;

    s->port = free_port();
    if (s->port <= 0) {
        complain("no free loopback port: %s", strerror(errno));
        return -1;
    }
    snprintf(portbuf, sizeof(portbuf), "%d", s->port);
    s->pid = fork();
    if (s->pid < 0) {
        complain("fork: %s", strerror(errno));
        s->pid = 0;
        return -1;
    }
    if (s->pid == 0) {
        char *args[] = {(char *)exe, "--port",      portbuf, "--bind",
                        "127.0.0.1", "--save",      "",      "--appendonly",
                        "no",        "--dir",       s->dir,  "--logfile",
                        "redis.log", "--daemonize", "no",    "--io-threads",
                        "1",         NULL};
#if defined(__linux__)
        /* The server must not outlive an interrupted bench. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
        execvp(exe, args);
        _exit(127);
    }
    deadline = uc_bench_now_ns() + 5000000000ull;
    while (uc_bench_now_ns() < deadline) {
        uc_cache_t *c = NULL;
        int st;
        int rc;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        if (open_redis(s->port, 1, &c) != UC_OK) {
            return -1;
        }
        rc = uc_cache_ping(c, NULL);
        uc_cache_destroy(c);
        if (rc == UC_OK) {
            return 0;
        }
        sleep_ms(20);
    }
    complain("redis-server on port %d did not answer within 5 s", s->port);
    return -1;
}

static int server_start(server_t *s, const char *exe)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->dir, "/tmp/uc-bench.XXXXXX", sizeof("/tmp/uc-bench.XXXXXX"));
    if (mkdtemp(s->dir) == NULL) {
        complain("mkdtemp: %s", strerror(errno));
        s->dir[0] = '\0';
        return -1;
    }
    /* The port may be taken between probe and bind: try a few. */
    for (int i = 0; i < 3; i++) {
        if (server_start_once(s, exe) == 0) {
            return 0;
        }
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
    }
    complain("cannot start '%s'", exe);
    server_stop(s);
    return -1;
}

/* ---- library runs ------------------------------------------------------- */

typedef enum { OP_GET, OP_SET, OP_MGET } op_t;

typedef struct run run_t;

typedef struct {
    run_t *run;
    pthread_t tid;
    uint64_t seed;
    uint64_t ops;    /* calls */
    uint64_t keys;   /* keys read or written */
    uint64_t misses; /* keys not found */
    uint64_t errors; /* calls that failed */
    int first_error;
    uint64_t end_ns;
    hist_t hist; /* per-call latency in ns */
} worker_t;

struct run {
    uc_cache_t *cache;
    op_t op;
    unsigned nkeys;
    const char *value;
    size_t vlen;
    uint64_t start_ns;
    uint64_t deadline_ns;
    pthread_barrier_t barrier;
};

/* Result of one run (library or redis-benchmark). */
typedef struct {
    int ok;
    double rate; /* ops/s, or keys/s for multi-get */
    double p50_us;
    double p99_us;
    uint64_t errors;
    uint64_t misses;
    int first_error;
} result_t;

static int one_op(worker_t *w, char keys[MGET_KEYS][KEY_LEN])
{
    run_t *r = w->run;
    int rc;

    if (r->op == OP_MGET) {
        const char *kp[MGET_KEYS];
        size_t kl[MGET_KEYS];
        uc_value_t out[MGET_KEYS];
        for (unsigned i = 0; i < MGET_KEYS; i++) {
            uc_bench_key_name(
                (unsigned)(uc_bench_rng_next(&w->seed) % r->nkeys), keys[i]);
            kp[i] = keys[i];
            kl[i] = KEY_LEN - 1;
        }
        rc = uc_cache_mget(r->cache, MGET_KEYS, kp, kl, out);
        if (rc == UC_OK) {
            for (unsigned i = 0; i < MGET_KEYS; i++) {
                w->misses += out[i].status != UC_OK;
            }
            uc_values_release(out, MGET_KEYS);
            w->keys += MGET_KEYS;
        }
        return rc;
    }
    uc_bench_key_name((unsigned)(uc_bench_rng_next(&w->seed) % r->nkeys),
                      keys[0]);
    if (r->op == OP_GET) {
        char *val = NULL;
        size_t len = 0;
        rc = uc_cache_get(r->cache, keys[0], KEY_LEN - 1, &val, &len);
        if (rc == UC_OK) {
            uc_free(val);
        } else if (rc == UC_MISS) {
            w->misses++;
            rc = UC_OK;
        }
    } else {
        rc = uc_cache_set(r->cache, keys[0], KEY_LEN - 1, r->value, r->vlen, 0);
    }
    if (rc == UC_OK) {
        w->keys++;
    }
    return rc;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char keys[MGET_KEYS][KEY_LEN];
    uint64_t t = 0;

    pthread_barrier_wait(&w->run->barrier);
    for (;;) {
        uint64_t t0 = uc_bench_now_ns();
        int rc;
        if (t0 >= w->run->deadline_ns) {
            t = t0;
            break;
        }
        rc = one_op(w, keys);
        t = uc_bench_now_ns();
        w->ops++;
        if (rc != UC_OK) {
            if (w->errors++ == 0) {
                w->first_error = rc;
            }
        } else {
            hist_add(&w->hist, t - t0);
        }
    }
    w->end_ns = t;
    return NULL;
}

/* Runs `op` from `threads` threads for `secs` seconds and fills res. */
static int run_library(uc_cache_t *cache, op_t op, int threads, double secs,
                       unsigned nkeys, const char *value, size_t vlen,
                       result_t *res)
{
    run_t r;
    worker_t *w = calloc((size_t)threads, sizeof(*w));
    hist_t *all = calloc(1, sizeof(*all));
    uint64_t keys = 0;
    uint64_t end = 0;
    int started = 0;
    int rc = -1;

    memset(res, 0, sizeof(*res));
    if (w == NULL || all == NULL) {
        complain("out of memory");
        goto cleanup;
    }
    memset(&r, 0, sizeof(r));
    r.cache = cache;
    r.op = op;
    r.nkeys = nkeys;
    r.value = value;
    r.vlen = vlen;
    if (pthread_barrier_init(&r.barrier, NULL, (unsigned)threads + 1u) != 0) {
        complain("pthread_barrier_init failed");
        goto cleanup;
    }
    for (int i = 0; i < threads; i++) {
        w[i].run = &r;
        w[i].seed =
            0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) + uc_bench_now_ns();
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
            complain("pthread_create failed");
            /* Threads already started wait on the barrier: release them
             * with a deadline in the past. */
            r.deadline_ns = 0;
            break;
        }
        started++;
    }
    if (started == threads) {
        r.start_ns = uc_bench_now_ns();
        r.deadline_ns = r.start_ns + (uint64_t)(secs * 1e9);
        pthread_barrier_wait(&r.barrier);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(w[i].tid, NULL);
    }
    pthread_barrier_destroy(&r.barrier);
    if (started != threads) {
        goto cleanup;
    }
    for (int i = 0; i < threads; i++) {
        hist_merge(all, &w[i].hist);
        keys += w[i].keys;
        res->misses += w[i].misses;
        if (w[i].errors > 0 && res->errors == 0) {
            res->first_error = w[i].first_error;
        }
        res->errors += w[i].errors;
        if (w[i].end_ns > end) {
            end = w[i].end_ns;
        }
    }
    if (end > r.start_ns && keys > 0) {
        res->ok = 1;
        res->rate = (double)keys / ((double)(end - r.start_ns) / 1e9);
        res->p50_us = (double)hist_quantile(all, 0.50) / 1e3;
        res->p99_us = (double)hist_quantile(all, 0.99) / 1e3;
    }
    rc = 0;
cleanup:
    free(w);
    free(all);
    return rc;
}

/* Stores every key of the key set, so that GETs hit. */
static int populate(uc_cache_t *cache, unsigned nkeys, const char *value,
                    size_t vlen)
{
    enum { BATCH = 100 };
    char names[BATCH][KEY_LEN];
    const char *kp[BATCH];
    const char *vp[BATCH];
    size_t kl[BATCH];
    size_t vl[BATCH];

    for (unsigned base = 0; base < nkeys; base += BATCH) {
        size_t n = nkeys - base < BATCH ? nkeys - base : BATCH;
        int rc;
        for (size_t i = 0; i < n; i++) {
            uc_bench_key_name(base + (unsigned)i, names[i]);
            kp[i] = names[i];
            kl[i] = KEY_LEN - 1;
            vp[i] = value;
            vl[i] = vlen;
        }
        rc = uc_cache_mset(cache, n, kp, kl, vp, vl, 0);
        if (rc != UC_OK) {
            complain("populate: %s", uc_strerror(rc));
            return rc;
        }
    }
    return UC_OK;
}

/* ---- redis-benchmark ---------------------------------------------------- */

/*
 * Runs argv, collecting stdout and stderr (at most RB_OUTPUT_MAX bytes) into
 * buf, for at most timeout_s seconds (then the child is killed). Returns the
 * exit status, or -1.
 */
static int run_capture(char *const argv[], char *buf, size_t cap,
                       double timeout_s)
{
    int fds[2];
    size_t len = 0;
    uint64_t deadline = uc_bench_now_ns() + (uint64_t)(timeout_s * 1e9);
    pid_t pid;
    int st = 0;
    int killed = 0;

    buf[0] = '\0';
    if (pipe(fds) != 0) {
        complain("pipe: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        complain("fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
#if defined(__linux__)
        prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        uint64_t now = uc_bench_now_ns();
        char tmp[4096];
        ssize_t n;
        int left_ms;
        if (now >= deadline) {
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        left_ms = (int)((deadline - now) / 1000000u) + 1;
        if (poll(&pfd, 1, left_ms) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        n = read(fds[0], tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (len + 1 < cap) {
            size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
            memcpy(buf + len, tmp, take);
            len += take;
            buf[len] = '\0';
        }
    }
    close(fds[0]);
    waitpid(pid, &st, 0);
    if (killed) {
        complain("%s did not finish within %.0f s", argv[0], timeout_s);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Splits one CSV line of redis-benchmark into at most max fields, removing
 * the double quotes (its fields never contain commas or quotes). Modifies
 * line. Returns the number of fields.
 */
static size_t csv_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;

    while (n < max) {
        char *end = strchr(p, ',');
        size_t flen;
        if (end != NULL) {
            *end = '\0';
        }
        flen = strlen(p);
        if (flen >= 2 && p[0] == '"' && p[flen - 1] == '"') {
            p[flen - 1] = '\0';
            p++;
        }
        fields[n++] = p;
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return n;
}

/*
 * Finds the row of `test` ("GET", "SET") in redis-benchmark --csv output
 * and reads its rps, p50 and p99 columns by header name. Returns 0 or -1.
 */
static int parse_rb_csv(const char *out, const char *test, result_t *res)
{
    char line[512];
    char *cols[16];
    char header[512];
    size_t ncols = 0;
    int i_rps = -1, i_p50 = -1, i_p99 = -1;
    const char *p = out;

    while (*p != '\0') {
        size_t llen = strcspn(p, "\r\n");
        char *f[16];
        size_t n;
        if (llen >= sizeof(line)) {
            llen = sizeof(line) - 1;
        }
        memcpy(line, p, llen);
        line[llen] = '\0';
        p += strcspn(p, "\r\n");
        p += strspn(p, "\r\n");
        if (strncmp(line, "\"test\"", 6) == 0) {
            /* Column names point into header, which outlives the loop. */
            memcpy(header, line, llen + 1);
            ncols = csv_split(header, cols, 16);
            for (size_t i = 0; i < ncols; i++) {
                if (strcmp(cols[i], "rps") == 0) {
                    i_rps = (int)i;
                } else if (strcmp(cols[i], "p50_latency_ms") == 0) {
                    i_p50 = (int)i;
                } else if (strcmp(cols[i], "p99_latency_ms") == 0) {
                    i_p99 = (int)i;
                }
            }
            continue;
        }
        if (ncols == 0 || i_rps < 0 || i_p50 < 0 || i_p99 < 0) {
            continue;
        }
        n = csv_split(line, f, 16);
        if (n != ncols || strcmp(f[0], test) != 0) {
            continue;
        }
        res->rate = strtod(f[i_rps], NULL);
        res->p50_us = strtod(f[i_p50], NULL) * 1e3;
        res->p99_us = strtod(f[i_p99], NULL) * 1e3;
        res->ok = res->rate > 0;
        return res->ok ? 0 : -1;
    }
    return -1;
}

/*
 * Runs redis-benchmark with `tests` (e.g. "set,get"), `clients`, pipeline
 * depth and `count` requests per test, over keys key:000000000000 ..
 * key:(nkeys-1), and parses the rows named in want[0..nwant-1].
 */
static int run_rb(const char *exe, int port, int clients, int pipeline,
                  const char *tests, long count, unsigned nkeys, size_t vlen,
                  double timeout_s, const char *const *want, result_t *res,
                  size_t nwant)
{
    char portbuf[16], cbuf[16], pbuf[16], nbuf[32], rbuf[16], dbuf[32];
    char *out = malloc(RB_OUTPUT_MAX);
    int st;
    int rc = -1;

    if (out == NULL) {
        complain("out of memory");
        return -1;
    }
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    snprintf(cbuf, sizeof(cbuf), "%d", clients);
    snprintf(pbuf, sizeof(pbuf), "%d", pipeline);
    snprintf(nbuf, sizeof(nbuf), "%ld", count);
    snprintf(rbuf, sizeof(rbuf), "%u", nkeys);
    snprintf(dbuf, sizeof(dbuf), "%zu", vlen);
    char *argv[] = {(char *)exe,   "-h", "127.0.0.1", "-p", portbuf,
                    "-c",          cbuf, "-d",        dbuf, "-t",
                    (char *)tests, "-n", nbuf,        "-r", rbuf,
                    "-P",          pbuf, "--csv",     NULL};
    st = run_capture(argv, out, RB_OUTPUT_MAX, timeout_s);
    if (st != 0) {
        complain("%s exited with status %d: %.300s", exe, st, out);
        goto cleanup;
    }
    for (size_t i = 0; i < nwant; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        if (parse_rb_csv(out, want[i], &res[i]) != 0) {
            complain("no %s row in the output of %s: %.300s", want[i], exe,
                     out);
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    free(out);
    return rc;
}

/* ---- report ------------------------------------------------------------- */

typedef struct {
    int threads;
    double secs;
    unsigned nkeys;
    size_t vlen;
    int repeat;
    int check;
    int skip_rb;
    const char *server_exe;
    const char *rb_exe;
} opts_t;

static void print_result(const result_t *r)
{
    if (!r->ok) {
        printf(" %12s %8s %8s", "failed", "-", "-");
        return;
    }
    printf(" %12.0f %8.1f %8.1f", r->rate, r->p50_us, r->p99_us);
}

/* Prints one comparison line; returns 1 when the ratio misses its target. */
static int print_line(const char *name, const result_t *lib,
                      const result_t *ref)
{
    int miss = 0;

    printf("%-18s", name);
    print_result(lib);
    if (ref == NULL) {
        printf("   | %30s |\n", "no reference");
    } else {
        double ratio = lib->ok && ref->ok ? lib->rate / ref->rate : 0.0;
        printf("   |");
        print_result(ref);
        if (lib->ok && ref->ok) {
            miss = ratio < TARGET_RATIO;
            printf(" | %5.2fx  >= %.1fx  %s\n", ratio, TARGET_RATIO,
                   miss ? "BELOW" : "ok");
        } else {
            miss = 1;
            printf(" |     -  >= %.1fx  FAILED\n", TARGET_RATIO);
        }
    }
    if (lib->errors > 0) {
        printf("%-18s   %" PRIu64 " failed calls (first: %s)\n", "",
               lib->errors, uc_strerror(lib->first_error));
    }
    if (lib->misses > 0) {
        printf("%-18s   %" PRIu64 " keys missing\n", "", lib->misses);
    }
    return miss;
}

static const char usage_text[] =
    "usage: uc-bench [--threads N] [--duration SECONDS] [--repeat N]\n"
    "                [--keys N] [--value-size BYTES] [--redis-server PATH]\n"
    "                [--redis-benchmark PATH] [--no-redis-benchmark] "
    "[--check]\n"
    "\n"
    "  --threads N          threads of the library and clients of\n"
    "                       redis-benchmark (default 50)\n"
    "  --duration SECONDS   length of each library run (default 3);\n"
    "                       redis-benchmark runs are sized to about as long\n"
    "  --repeat N           rounds; each figure is the best of them\n"
    "                       (default 2)\n"
    "  --keys N             distinct keys read and written (default 10000)\n"
    "  --value-size BYTES   value size (default 200)\n"
    "  --no-redis-benchmark library figures only\n"
    "  --check              exit 1 when a ratio is below its target\n";

static int parse_opts(int argc, char **argv, opts_t *o)
{
    o->threads = 50;
    o->secs = 3.0;
    o->nkeys = 10000;
    o->vlen = 200;
    o->repeat = 2;
    o->server_exe = "redis-server";
    o->rb_exe = "redis-benchmark";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            exit(0);
        } else if (strcmp(a, "--check") == 0) {
            o->check = 1;
        } else if (strcmp(a, "--no-redis-benchmark") == 0) {
            o->skip_rb = 1;
        } else if (strcmp(a, "--threads") == 0 &&
                   uc_bench_parse_long(v, 1, THREADS_MAX, &n) == 0) {
            o->threads = (int)n;
            i++;
        } else if (strcmp(a, "--duration") == 0 &&
                   uc_bench_parse_long(v, 1, 60, &n) == 0) {
            o->secs = (double)n;
            i++;
        } else if (strcmp(a, "--repeat") == 0 &&
                   uc_bench_parse_long(v, 1, 10, &n) == 0) {
            o->repeat = (int)n;
            i++;
        } else if (strcmp(a, "--keys") == 0 &&
                   uc_bench_parse_long(v, MGET_KEYS, 1000000, &n) == 0) {
            o->nkeys = (unsigned)n;
            i++;
        } else if (strcmp(a, "--value-size") == 0 &&
                   uc_bench_parse_long(v, 1, 1024 * 1024, &n) == 0) {
            o->vlen = (size_t)n;
            i++;
        } else if (strcmp(a, "--redis-server") == 0 && v != NULL) {
            o->server_exe = v;
            i++;
        } else if (strcmp(a, "--redis-benchmark") == 0 && v != NULL) {
            o->rb_exe = v;
            i++;
        } else {
            fprintf(stderr, "uc-bench: bad argument '%s'\n%s", a, usage_text);
            return -1;
        }
    }
    return 0;
}

/* Requests for redis-benchmark: as many as the library did in `secs`. */
static long rb_count(const result_t *lib, double secs)
{
    double n = lib->ok ? lib->rate * secs : 0.0;

    if (n < 10000.0) {
        return 10000;
    }
    return n > 1e8 ? 100000000L : (long)n;
}

/* Keeps the faster of two runs of the same thing; failures add up. */
static void keep_best(result_t *best, const result_t *cur)
{
    uint64_t errors = best->errors + cur->errors;
    uint64_t misses = best->misses + cur->misses;
    int first_error = best->errors > 0 ? best->first_error : cur->first_error;

    if (cur->ok && (!best->ok || cur->rate > best->rate)) {
        *best = *cur;
    }
    best->errors = errors;
    best->misses = misses;
    best->first_error = first_error;
}

enum { R_GET, R_SET, R_MGET, RB_SET, RB_GET, RB_MGET, R_COUNT };

/*
 * One round of the Redis comparisons, library then reference for each, so
 * that the two sides of a ratio run back to back under the same load.
 * Returns -1 when a library run failed; a failed redis-benchmark run is
 * counted in *rb_failed (the round goes on, and the whole run exits
 * non-zero), since keeping the best of the rounds would otherwise hide it.
 */
static int redis_round(const opts_t *o, uc_cache_t *cache, int port,
                       const char *value, result_t *res, int *rb_failed)
{
    const char *const getset[] = {"SET", "GET"};
    const char *const get[] = {"GET"};
    double rb_timeout = o->secs * 10.0 + 30.0;

    memset(res, 0, sizeof(*res) * R_COUNT);
    if (run_library(cache, OP_GET, o->threads, o->secs, o->nkeys, value,
                    o->vlen, &res[R_GET]) != 0 ||
        run_library(cache, OP_SET, o->threads, o->secs, o->nkeys, value,
                    o->vlen, &res[R_SET]) != 0) {
        return -1;
    }
    if (!o->skip_rb) {
        const result_t *faster =
            res[R_GET].rate > res[R_SET].rate ? &res[R_GET] : &res[R_SET];
        if (run_rb(o->rb_exe, port, o->threads, 1, "set,get",
                   rb_count(faster, o->secs), o->nkeys, o->vlen, rb_timeout,
                   getset, &res[RB_SET], 2) != 0) {
            complain("redis-benchmark SET/GET run failed");
            (*rb_failed)++;
        }
    }
    /* redis-benchmark's SETs rewrote the values with others of the same
     * size: every key is still present. */
    if (run_library(cache, OP_MGET, o->threads, o->secs, o->nkeys, value,
                    o->vlen, &res[R_MGET]) != 0) {
        return -1;
    }
    if (!o->skip_rb) {
        if (run_rb(o->rb_exe, port, o->threads, MGET_KEYS, "get",
                   rb_count(&res[R_MGET], o->secs), o->nkeys, o->vlen,
                   rb_timeout, get, &res[RB_MGET], 1) != 0) {
            complain("redis-benchmark pipelined GET run failed");
            (*rb_failed)++;
        }
    }
    return 0;
}

/* Returns 0, or -1 when a run failed (any redis-benchmark run included). */
static int bench_redis(const opts_t *o, const char *value, int *below)
{
    server_t srv;
    uc_cache_t *cache = NULL;
    uc_server_info_t info;
    result_t best[R_COUNT];
    result_t cur[R_COUNT];
    int rb_failed = 0;
    int rc = -1;

    if (server_start(&srv, o->server_exe) != 0) {
        return -1;
    }
    if (open_redis(srv.port, o->threads, &cache) != UC_OK) {
        goto cleanup;
    }
    memset(&info, 0, sizeof(info));
    uc_cache_server_info(cache, &info);
    info.version[sizeof(info.version) - 1] = '\0';
    printf("redis-server %s on 127.0.0.1:%d (no persistence), %d threads "
           "and %d clients,\n%zu-byte values, %u keys, %.0f s per library "
           "run, best of %d rounds\n\n",
           info.version, srv.port, o->threads, o->threads, o->vlen, o->nkeys,
           o->secs, o->repeat);
    fflush(stdout);
    if (populate(cache, o->nkeys, value, o->vlen) != UC_OK) {
        goto cleanup;
    }
    memset(best, 0, sizeof(best));
    for (int i = 0; i < o->repeat; i++) {
        if (redis_round(o, cache, srv.port, value, cur, &rb_failed) != 0) {
            goto cleanup;
        }
        for (int k = 0; k < R_COUNT; k++) {
            keep_best(&best[k], &cur[k]);
        }
    }
    printf("%-18s %12s %8s %8s   | %12s %8s %8s | %6s %7s\n", "", "library",
           "p50 us", "p99 us", "reference", "p50 us", "p99 us", "ratio",
           "target");
    *below += print_line("GET ops/s", &best[R_GET],
                         o->skip_rb ? NULL : &best[RB_GET]);
    *below += print_line("SET ops/s", &best[R_SET],
                         o->skip_rb ? NULL : &best[RB_SET]);
    *below += print_line("MGET16 keys/s", &best[R_MGET],
                         o->skip_rb ? NULL : &best[RB_MGET]);
    printf("%-18s   (library: uc_cache_mget of 16 keys per call; reference:"
           " GET pipelined -P 16;\n%-18s    keys per second on both sides,"
           " latency per call / per request)\n",
           "", "");
    if (rb_failed > 0) {
        printf("%d redis-benchmark run(s) FAILED: this run is not a "
               "result\n",
               rb_failed);
        goto cleanup;
    }
    rc = 0;
cleanup:
    uc_cache_destroy(cache);
    server_stop(&srv);
    return rc;
}

static int bench_memory(const opts_t *o, const char *value)
{
    uc_config_t cfg = UC_CONFIG_INIT;
    uc_cache_t *cache = NULL;
    result_t mget, mset;
    char err[256];
    int rc;

    cfg.backend = UC_BACKEND_MEMORY;
    err[0] = '\0';
    rc = uc_cache_create(&cfg, &cache, err, sizeof(err));
    if (rc != UC_OK) {
        complain("memory backend: %s", err[0] != '\0' ? err : uc_strerror(rc));
        return -1;
    }
    rc = -1;
    memset(&mget, 0, sizeof(mget));
    memset(&mset, 0, sizeof(mset));
    if (populate(cache, o->nkeys, value, o->vlen) != UC_OK) {
        goto cleanup;
    }
    for (int i = 0; i < o->repeat; i++) {
        result_t g, st;
        if (run_library(cache, OP_GET, o->threads, o->secs, o->nkeys, value,
                        o->vlen, &g) != 0 ||
            run_library(cache, OP_SET, o->threads, o->secs, o->nkeys, value,
                        o->vlen, &st) != 0) {
            goto cleanup;
        }
        keep_best(&mget, &g);
        keep_best(&mset, &st);
    }
    printf("\n");
    print_line("memory GET ops/s", &mget, NULL);
    print_line("memory SET ops/s", &mset, NULL);
    rc = 0;
cleanup:
    uc_cache_destroy(cache);
    return rc;
}

/* One-minute load average, to tell a quiet machine from a busy one. */
static double load1(void)
{
    double l[1] = {0.0};

    return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

int main(int argc, char **argv)
{
    opts_t o;
    char *value;
    int below = 0;
    uint64_t t0 = uc_bench_now_ns();
    int rc;

    memset(&o, 0, sizeof(o));
    if (parse_opts(argc, argv, &o) != 0) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    value = malloc(o.vlen);
    if (value == NULL) {
        complain("out of memory");
        return 2;
    }
    memset(value, 'x', o.vlen);
    printf("uc-bench: libutxocache %s, %ld online cpus, load %.2f\n",
           uc_version(), sysconf(_SC_NPROCESSORS_ONLN), load1());
    rc = bench_redis(&o, value, &below);
    if (rc == 0) {
        rc = bench_memory(&o, value);
    }
    free(value);
    printf("\nwhole run: %.1f s, load %.2f at the end%s\n",
           (double)(uc_bench_now_ns() - t0) / 1e9, load1(),
           load1() > (double)sysconf(_SC_NPROCESSORS_ONLN) + 2.0
               ? " (other work ran too: figures are noisy)"
               : "");
    if (rc != 0) {
        return 2;
    }
    return o.check && below > 0 ? 1 : 0;
}
