/* SPDX-License-Identifier: MIT */
/*
 * uc-cluster-bench: libutxocache on a Redis Cluster beside the reference
 * client that ships with Redis, in one bounded run. It starts its own
 * cluster of six nodes (three primaries, three replicas, no persistence;
 * tests/support/redis_cluster.c, compiled in) on free loopback ports in a
 * temporary directory, then, in each round:
 *
 *   1. C threads of SET, then of GET, through the library's public API
 *      (raw uc_cache_set / uc_cache_get, near cache off, seeded with one
 *      node), N calls per operation on random keys;
 *   2. `redis-benchmark --cluster -c C -n N -d D -r K -t set,get` seeded
 *      with the same node.
 *
 * redis-benchmark's -r K in cluster mode means K keys under each
 * primary's hash tag, so the library draws from K x primaries keys: both
 * sides touch as many keys and their GETs hit as often. Each side gets an
 * empty cluster (FLUSHALL on the primaries) first, and around each side
 * the nodes' own counters (INFO stats, commandstats) are read, so the
 * report also says how the calls spread over the primaries, how many GETs
 * hit, and how many calls a node answered with a redirect (MOVED/ASK)
 * instead of executing them. A library call that fails is counted, not
 * timed; an operation with failed calls gets no ratio, since its rate is
 * not that of working calls. Exit status: 0; 1 with --check when a ratio
 * misses its target; 2 when a run failed or a figure is missing.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <hiredis/hiredis.h>

#include "bench_util.h"
#include "redis_cluster.h"
#include "utxocache/utxocache.h"

#define KEY_LEN UC_BENCH_KEY_LEN
#define TARGET_RATIO 0.9
#define CLIENTS_MAX 1024
#define LOG_LINE_MAX 256

/* ---- histogram ---------------------------------------------------------- */

/*
 * How it works: a value v below 2 * SUB is its own bucket; above, with its
 * highest set bit at e, v falls in [2^e, 2^(e+1)), cut into SUB equal
 * buckets by the SUB_BITS bits under the top bit, so a bucket is never
 * wider than 1/SUB of its values (1.6 % for SUB = 64).
 */
#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define HIST_LEN (2 * SUB + (64 - SUB_BITS - 1) * SUB)

typedef struct {
    uint64_t counts[HIST_LEN];
    uint64_t total;
} hist_t;

static size_t hist_index(uint64_t v)
{
    unsigned e;

    if (v < 2 * SUB) {
        return (size_t)v;
    }
    e = 63u - (unsigned)__builtin_clzll(v);
    return 2 * SUB + (size_t)(e - SUB_BITS - 1) * SUB +
           (size_t)((v >> (e - SUB_BITS)) - SUB);
}

/* The largest value of bucket i. */
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

/* The upper bound of the q-quantile (0 < q <= 1); 0 when h is empty. */
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

static void complain(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void complain(const char *fmt, ...)
{
    va_list ap;

    fputs("uc-cluster-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
}

static double load1(void)
{
    double l[1] = {0.0};

    return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

/* ---- interruption ------------------------------------------------------- */

/*
 * SIGINT, SIGTERM or SIGHUP: the handler records the signal and stops the
 * running redis-benchmark and, once the cluster is up, its nodes, by their
 * PIDs (a child not yet reaped keeps its PID, so the signal cannot reach
 * another process); the library threads see the record and stop, and main
 * goes through its normal cleanup. While the cluster starts the handler
 * only records: the start is bounded, its nodes are all known when it
 * returns, and main then stops them. (A blocked signal mask would be
 * inherited by the nodes through exec.) A second signal takes the default
 * action (SA_RESETHAND).
 */
static atomic_int g_signal;
static atomic_int g_child;                         /* redis-benchmark, or 0 */
static uc_test_cluster_t *_Atomic g_cluster_nodes; /* NULL while starting */

static void on_signal(int sig)
{
    uc_test_cluster_t *c = atomic_load(&g_cluster_nodes);
    int child = atomic_load(&g_child);

    atomic_store(&g_signal, sig);
    if (child > 0) {
        kill((pid_t)child, SIGTERM);
    }
    for (int i = 0; c != NULL && i < UC_TEST_CLUSTER_NODES; i++) {
        pid_t pid = c->node[i].pid;
        if (pid > 0) {
            kill(pid, SIGCONT);
            kill(pid, SIGTERM);
        }
    }
}

static void install_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int interrupted(void)
{
    return atomic_load_explicit(&g_signal, memory_order_relaxed) != 0;
}

/* ---- the nodes' own counters -------------------------------------------- */

typedef struct {
    uint64_t calls[2];    /* executed: [0] SET, [1] GET */
    uint64_t rejected[2]; /* answered with a redirect or refused */
    uint64_t hits, misses;
} node_stats_t;

typedef struct {
    node_stats_t node[UC_TEST_CLUSTER_NODES];
} cluster_stats_t;

/* The number after `name` in text (name ends in ':' or '='), or 0. */
static uint64_t info_number(const char *text, const char *name)
{
    const char *p = strstr(text, name);

    return p != NULL ? strtoull(p + strlen(name), NULL, 10) : 0;
}

/* From "cmdstat_<cmd>:calls=..,rejected_calls=..," in INFO commandstats. */
static void cmdstat(const char *text, const char *cmd, uint64_t *calls,
                    uint64_t *rejected)
{
    char name[32];
    char line[512];
    const char *p;
    size_t n;

    *calls = 0;
    *rejected = 0;
    snprintf(name, sizeof(name), "\ncmdstat_%s:", cmd);
    p = strstr(text, name);
    if (p == NULL) {
        return;
    }
    p += strlen(name);
    n = strcspn(p, "\r\n");
    if (n >= sizeof(line)) {
        n = sizeof(line) - 1;
    }
    memcpy(line, p, n);
    line[n] = '\0';
    *calls = info_number(line, "calls=");
    *rejected = info_number(line, "rejected_calls=");
}

/* Reads every node's counters; 0, or -1 when a node did not answer. */
static int read_stats(const uc_test_cluster_t *c, cluster_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        redisContext *ctx = uc_test_cluster_connect(c, i);
        redisReply *r;
        node_stats_t *s = &out->node[i];
        int ok;
        if (ctx == NULL) {
            return -1;
        }
        r = redisCommand(ctx, "INFO stats commandstats");
        ok = r != NULL && r->type == REDIS_REPLY_STRING;
        if (ok) {
            cmdstat(r->str, "set", &s->calls[0], &s->rejected[0]);
            cmdstat(r->str, "get", &s->calls[1], &s->rejected[1]);
            s->hits = info_number(r->str, "\nkeyspace_hits:");
            s->misses = info_number(r->str, "\nkeyspace_misses:");
        }
        freeReplyObject(r);
        redisFree(ctx);
        if (!ok) {
            complain("INFO of cluster node %d failed", i);
            return -1;
        }
    }
    return 0;
}

/* into += after - before, node by node. */
static void add_delta(cluster_stats_t *into, const cluster_stats_t *before,
                      const cluster_stats_t *after)
{
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        node_stats_t *d = &into->node[i];
        const node_stats_t *b = &before->node[i];
        const node_stats_t *a = &after->node[i];
        for (int k = 0; k < 2; k++) {
            d->calls[k] += a->calls[k] - b->calls[k];
            d->rejected[k] += a->rejected[k] - b->rejected[k];
        }
        d->hits += a->hits - b->hits;
        d->misses += a->misses - b->misses;
    }
}

/* FLUSHALL on every primary (the replicas follow); 0 or -1. */
static int flush_primaries(const uc_test_cluster_t *c, const int *primary)
{
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        redisContext *ctx;
        redisReply *r;
        int ok;
        if (!primary[i]) {
            continue;
        }
        ctx = uc_test_cluster_connect(c, i);
        if (ctx == NULL) {
            return -1;
        }
        r = redisCommand(ctx, "FLUSHALL");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        redisFree(ctx);
        if (!ok) {
            complain("FLUSHALL on cluster node %d failed", i);
            return -1;
        }
    }
    return 0;
}

/* The server version from INFO server of node 0, into buf. */
static void server_version(const uc_test_cluster_t *c, char *buf, size_t len)
{
    redisContext *ctx = uc_test_cluster_connect(c, 0);
    redisReply *r = ctx != NULL ? redisCommand(ctx, "INFO server") : NULL;

    snprintf(buf, len, "?");
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        const char *v = strstr(r->str, "redis_version:");
        if (v != NULL) {
            v += strlen("redis_version:");
            snprintf(buf, len, "%.*s", (int)strcspn(v, "\r\n"), v);
        }
    }
    freeReplyObject(r);
    redisFree(ctx);
}

/* ---- the library -------------------------------------------------------- */

/* The first line the library logged at WARN or above, kept for the report;
 * written once, by whichever thread logs first. */
typedef struct {
    atomic_int claimed;
    atomic_int ready;
    atomic_ulong count;
    char first[LOG_LINE_MAX];
} log_capture_t;

static void capture_log(void *arg, uc_log_level_t level, const char *msg)
{
    log_capture_t *lc = arg;
    int expected = 0;

    if (level < UC_LOG_WARN) {
        return;
    }
    atomic_fetch_add(&lc->count, 1);
    if (atomic_compare_exchange_strong(&lc->claimed, &expected, 1)) {
        snprintf(lc->first, sizeof(lc->first), "%s", msg);
        atomic_store_explicit(&lc->ready, 1, memory_order_release);
    }
}

/* What REDIS_URL and REDIS_CLUSTER_NODES say for this bench's cluster, and
 * nothing else: the bench never reads the caller's environment, which may
 * point at a server it did not start. */
typedef struct {
    char url[64];
    char seeds[UC_TEST_CLUSTER_NODES * 24];
} lookup_t;

static const char *lookup_var(void *arg, const char *name)
{
    const lookup_t *l = arg;

    if (strcmp(name, "REDIS_URL") == 0) {
        return l->url;
    }
    if (strcmp(name, "REDIS_CLUSTER_NODES") == 0) {
        return l->seeds;
    }
    /* The client path's one setting, from the environment: a run with
     * UTXOCACHE_PIPELINE_MAX=0 shows the library without auto-pipelining. */
    if (strcmp(name, "UTXOCACHE_PIPELINE_MAX") == 0) {
        return getenv(name);
    }
    return NULL;
}

/* A cache seeded with node 0, near cache off, a pool of `clients`. */
static int open_cache(const uc_test_cluster_t *c, int clients,
                      log_capture_t *lc, uc_cache_t **out)
{
    uc_config_t cfg;
    lookup_t l;
    size_t used = 0;
    char err[256] = "";
    int rc;

    uc_config_init(&cfg);
    snprintf(l.url, sizeof(l.url), "redis://127.0.0.1:%d", c->node[0].port);
    l.seeds[0] = '\0';
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        used += (size_t)snprintf(l.seeds + used, sizeof(l.seeds) - used,
                                 "%s127.0.0.1:%d", i > 0 ? "," : "",
                                 c->node[i].port);
    }
    rc = uc_config_from_lookup(&cfg, lookup_var, &l, NULL, 0, err, sizeof(err));
    if (rc != UC_OK) {
        complain("config: %s", err[0] != '\0' ? err : uc_strerror(rc));
        return rc;
    }
    cfg.backend = UC_BACKEND_REDIS;
    cfg.max_connections = clients;
    cfg.near_off = 1;
    cfg.sigpipe_ignored = 1;
    /* A saturated 2-core machine can stall a reply for a while; a timeout
     * would count as a failed call and distort the figures. */
    cfg.connect_timeout_ms = 2000;
    cfg.command_timeout_ms = 2000;
    cfg.acquire_timeout_ms = 2000;
    cfg.log_fn = capture_log;
    cfg.log_arg = lc;
    cfg.log_level = UC_LOG_WARN;
    rc = uc_cache_create(&cfg, out, err, sizeof(err));
    if (rc != UC_OK) {
        complain("open cache: %s", err[0] != '\0' ? err : uc_strerror(rc));
    }
    return rc;
}

typedef enum { OP_SET = 0, OP_GET = 1 } op_t;

static const char *const op_name[2] = {"SET", "GET"};

/* One run's figures (library or redis-benchmark). */
typedef struct {
    int ok;      /* a rate was measured */
    double rate; /* calls per second */
    double p50_us, p99_us;
    uint64_t calls;  /* calls made (library) */
    uint64_t errors; /* calls that failed (library) */
    uint64_t misses; /* GETs answered "not found" (library) */
    int first_error;
    int cut; /* stopped by the time limit or a signal before all calls */
    /* redis-benchmark: the rate its summary printed, and whether that is
     * the rate above too (a run too short for a progress reading). */
    double summary_rate;
    int summary_only;
} result_t;

typedef struct {
    uc_cache_t *cache;
    op_t op;
    unsigned nkeys;
    const char *value;
    size_t vlen;
    long count;
    atomic_long issued;
    uint64_t deadline_ns;
    /* The start gate: the threads wait until `go`, so that all of them
     * begin together and none is timed while the others are created. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int go;
} run_t;

typedef struct {
    run_t *run;
    pthread_t tid;
    uint64_t seed;
    uint64_t calls, errors, misses;
    int first_error;
    int cut;
    uint64_t end_ns;
    hist_t hist; /* per-call latency in ns, working calls only */
} worker_t;

static int one_call(worker_t *w, char *key)
{
    run_t *r = w->run;
    int rc;

    uc_bench_key_name((unsigned)(uc_bench_rng_next(&w->seed) % r->nkeys), key);
    if (r->op == OP_SET) {
        return uc_cache_set(r->cache, key, KEY_LEN - 1, r->value, r->vlen, 0);
    }
    {
        char *val = NULL;
        size_t len = 0;
        rc = uc_cache_get(r->cache, key, KEY_LEN - 1, &val, &len);
        if (rc == UC_OK) {
            uc_free(val);
        } else if (rc == UC_MISS) {
            w->misses++;
            rc = UC_OK;
        }
    }
    return rc;
}

/* Takes calls from the run's shared count, as redis-benchmark's clients
 * do, until all are taken, the deadline passes or a signal came. */
static void *worker_main(void *arg)
{
    worker_t *w = arg;
    run_t *r = w->run;
    char key[KEY_LEN];
    uint64_t t = 0;

    pthread_mutex_lock(&r->lock);
    while (!r->go) {
        pthread_cond_wait(&r->cond, &r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    for (;;) {
        uint64_t t0 = uc_bench_now_ns();
        int rc;
        if (atomic_fetch_add_explicit(&r->issued, 1, memory_order_relaxed) >=
            r->count) {
            t = t0;
            break;
        }
        if (t0 >= r->deadline_ns || interrupted()) {
            w->cut = 1;
            t = t0;
            break;
        }
        rc = one_call(w, key);
        t = uc_bench_now_ns();
        w->calls++;
        if (rc != UC_OK) {
            if (w->errors++ == 0) {
                w->first_error = rc;
            }
        } else {
            w->hist.counts[hist_index(t - t0)]++;
            w->hist.total++;
        }
    }
    w->end_ns = t;
    return NULL;
}

/*
 * `count` calls of `op` from `threads` threads, at most `limit_s` seconds;
 * fills res (res->cut when the limit or a signal stopped it). Returns 0, or
 * -1 when the threads could not be started.
 */
static int run_library(uc_cache_t *cache, op_t op, int threads, long count,
                       unsigned nkeys, const char *value, size_t vlen,
                       double limit_s, result_t *res)
{
    run_t r;
    worker_t *w = calloc((size_t)threads, sizeof(*w));
    hist_t *all = calloc(1, sizeof(*all));
    uint64_t start, end = 0, good = 0;
    int started = 0;
    int rc = -1;

    memset(res, 0, sizeof(*res));
    memset(&r, 0, sizeof(r));
    if (w == NULL || all == NULL) {
        complain("out of memory");
        goto cleanup;
    }
    r.cache = cache;
    r.op = op;
    r.nkeys = nkeys;
    r.value = value;
    r.vlen = vlen;
    r.count = count;
    atomic_init(&r.issued, 0);
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cond, NULL);
    for (int i = 0; i < threads; i++) {
        w[i].run = &r;
        w[i].seed =
            0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) + uc_bench_now_ns();
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
            complain("pthread_create failed");
            break;
        }
        started++;
    }
    pthread_mutex_lock(&r.lock);
    start = uc_bench_now_ns();
    /* Without all threads, a deadline in the past ends the others at once. */
    r.deadline_ns = started == threads ? start + (uint64_t)(limit_s * 1e9) : 0;
    r.go = 1;
    pthread_cond_broadcast(&r.cond);
    pthread_mutex_unlock(&r.lock);
    for (int i = 0; i < started; i++) {
        pthread_join(w[i].tid, NULL);
    }
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.lock);
    if (started != threads) {
        goto cleanup;
    }
    for (int i = 0; i < threads; i++) {
        for (size_t b = 0; b < HIST_LEN; b++) {
            all->counts[b] += w[i].hist.counts[b];
        }
        all->total += w[i].hist.total;
        res->calls += w[i].calls;
        res->misses += w[i].misses;
        if (w[i].errors > 0 && res->errors == 0) {
            res->first_error = w[i].first_error;
        }
        res->errors += w[i].errors;
        res->cut |= w[i].cut;
        if (w[i].end_ns > end) {
            end = w[i].end_ns;
        }
    }
    good = res->calls - res->errors;
    if (end > start && res->calls > 0) {
        res->ok = good > 0;
        res->rate = (double)res->calls / ((double)(end - start) / 1e9);
        res->p50_us = (double)hist_quantile(all, 0.50) / 1e3;
        res->p99_us = (double)hist_quantile(all, 0.99) / 1e3;
    }
    rc = 0;
cleanup:
    free(w);
    free(all);
    return rc;
}

/* ---- redis-benchmark ---------------------------------------------------- */

/*
 * How redis-benchmark is read. In cluster mode it runs one event-loop
 * thread per primary, and a thread whose clients have nothing left to send
 * stops only on its next 250 ms progress tick; the run's time, and so the
 * "requests per second" of its summary, is rounded up to that tick (a
 * 0.5 s run is reported as lasting up to 0.75 s). Its progress lines
 * ("SET: rps=... (overall: R) ...", printed on every tick before the end)
 * carry the overall rate measured on a tick, which that rounding does not
 * touch: the last of them is the reference rate. The summary's rate is
 * kept too and printed beside it; its p50 and p99 are used as they are.
 * The output is read as it comes, segment by segment (progress lines end
 * in '\r'), so a long run needs no large buffer.
 */
#define SEGMENT_MAX 1024
#define TAIL_MAX 400
/* Progress lines sooner than this after the first are first ticks too. */
#define FIRST_TICK_NS 150000000u

typedef struct {
    int current;      /* the op whose summary is being read, or -1 */
    int latency_line; /* 1: next is the latency header; 2: the figures */
    int col_p50, col_p99;
    uint64_t first_ns[2];  /* when its first progress line came */
    double overall[2];     /* last progress reading kept; 0: none */
    double summary_rps[2]; /* the summary's "throughput summary" */
    double p50_ms[2], p99_ms[2];
    int have_latency[2];
    char tail[TAIL_MAX]; /* the last output, for error messages */
} rb_parse_t;

static int op_of(const char *s, size_t *skip)
{
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(op_name[k]);
        if (strncmp(s, op_name[k], n) == 0) {
            *skip = n;
            return k;
        }
    }
    return -1;
}

/* Reads the latency header ("avg min p50 p95 p99 max") for its columns. */
static void latency_columns(rb_parse_t *ps, const char *seg)
{
    const char *p = seg;
    int col = 0;

    ps->col_p50 = -1;
    ps->col_p99 = -1;
    for (;;) {
        size_t n;
        p += strspn(p, " ");
        n = strcspn(p, " ");
        if (n == 0) {
            break;
        }
        if (n == 3 && strncmp(p, "p50", 3) == 0) {
            ps->col_p50 = col;
        } else if (n == 3 && strncmp(p, "p99", 3) == 0) {
            ps->col_p99 = col;
        }
        p += n;
        col++;
    }
}

static void latency_figures(rb_parse_t *ps, const char *seg)
{
    const char *p = seg;
    double v[16];
    int n = 0;

    while (n < 16) {
        char *end;
        double x = strtod(p, &end);
        if (end == p) {
            break;
        }
        v[n++] = x;
        p = end;
    }
    if (ps->current >= 0 && ps->col_p50 >= 0 && ps->col_p99 >= 0 &&
        ps->col_p50 < n && ps->col_p99 < n) {
        ps->p50_ms[ps->current] = v[ps->col_p50];
        ps->p99_ms[ps->current] = v[ps->col_p99];
        ps->have_latency[ps->current] = 1;
    }
}

/* One segment of output (a line, or a progress update ending in '\r'),
 * read at now_ns. */
static void rb_segment(rb_parse_t *ps, const char *seg, uint64_t now)
{
    size_t skip = 0;
    const char *lead = seg + strspn(seg, " ");
    int op;

    if (*lead == '\0') {
        return;
    }
    if (ps->latency_line == 1) {
        latency_columns(ps, seg);
        ps->latency_line = 2;
        return;
    }
    if (ps->latency_line == 2) {
        latency_figures(ps, seg);
        ps->latency_line = 0;
        return;
    }
    op = op_of(lead, &skip);
    if (op >= 0 && strncmp(lead + skip, ": rps=", 6) == 0) {
        const char *o = strstr(lead, "(overall: ");
        double v = o != NULL ? strtod(o + strlen("(overall: "), NULL) : 0.0;
        /* Each thread's first tick comes as the run starts, over a few
         * milliseconds or none (a rate of inf or nan): only the ticks
         * from the second one on, 250 ms later, are measurements. */
        if (ps->first_ns[op] == 0) {
            ps->first_ns[op] = now;
        } else if (now - ps->first_ns[op] >= FIRST_TICK_NS && isfinite(v) &&
                   v > 0) {
            ps->overall[op] = v;
        }
    } else if (strncmp(lead, "====== ", 7) == 0) {
        ps->current = op_of(lead + 7, &skip);
    } else if (strncmp(lead, "throughput summary: ", 20) == 0 &&
               ps->current >= 0) {
        ps->summary_rps[ps->current] = strtod(lead + 20, NULL);
    } else if (strncmp(lead, "latency summary", 15) == 0) {
        ps->latency_line = 1;
    }
}

static void keep_tail(rb_parse_t *ps, const char *data, size_t n)
{
    size_t have = strlen(ps->tail);

    if (n >= TAIL_MAX - 1) {
        memcpy(ps->tail, data + n - (TAIL_MAX - 1), TAIL_MAX - 1);
        ps->tail[TAIL_MAX - 1] = '\0';
        return;
    }
    if (have + n >= TAIL_MAX) {
        size_t drop = have + n - (TAIL_MAX - 1);
        memmove(ps->tail, ps->tail + drop, have - drop + 1);
        have -= drop;
    }
    memcpy(ps->tail + have, data, n);
    ps->tail[have + n] = '\0';
}

/*
 * Runs argv with its stdout and stderr fed, segment by segment, to
 * rb_segment(), for at most timeout_s seconds (then it is killed). Returns
 * the exit status, or -1 (killed, died of a signal, or not started).
 */
static int run_capture(char *const argv[], double timeout_s, rb_parse_t *ps)
{
    char seg[SEGMENT_MAX];
    size_t slen = 0;
    int fds[2];
    uint64_t deadline = uc_bench_now_ns() + (uint64_t)(timeout_s * 1e9);
    pid_t pid;
    int st = 0;
    int killed = 0;

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
    atomic_store(&g_child, (int)pid);
    close(fds[1]);
    for (;;) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        uint64_t now = uc_bench_now_ns();
        char buf[4096];
        ssize_t n;
        if (now >= deadline) {
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        if (poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        n = read(fds[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        keep_tail(ps, buf, (size_t)n);
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' || buf[i] == '\r') {
                seg[slen] = '\0';
                rb_segment(ps, seg, uc_bench_now_ns());
                slen = 0;
            } else if (slen + 1 < sizeof(seg)) {
                seg[slen++] = buf[i];
            }
        }
    }
    if (slen > 0) {
        seg[slen] = '\0';
        rb_segment(ps, seg, uc_bench_now_ns());
    }
    close(fds[0]);
    /* The output closed or the deadline passed: the child is ending or was
     * killed. One that closed its output and lingers is killed at the
     * deadline, so this wait is bounded too. */
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (!killed && uc_bench_now_ns() >= deadline) {
            kill(pid, SIGKILL);
            killed = 1;
        }
        poll(NULL, 0, 10);
    }
    atomic_store(&g_child, 0);
    if (killed) {
        complain("%s did not finish within %.0f s", argv[0], timeout_s);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * `redis-benchmark --cluster -h 127.0.0.1 -p PORT -t set,get -c C -n N
 * -d D -r K`: its SET figures into res[OP_SET], its GET figures into
 * res[OP_GET]. Returns 0 or -1 (said why).
 */
static int run_rb(const char *exe, int port, int clients, long count,
                  unsigned nkeys, size_t vlen, double timeout_s,
                  result_t res[2])
{
    char portbuf[16], cbuf[16], nbuf[32], rbuf[16], dbuf[32];
    rb_parse_t ps;
    int st;

    memset(res, 0, 2 * sizeof(res[0]));
    memset(&ps, 0, sizeof(ps));
    ps.current = -1;
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    snprintf(cbuf, sizeof(cbuf), "%d", clients);
    snprintf(nbuf, sizeof(nbuf), "%ld", count);
    snprintf(rbuf, sizeof(rbuf), "%u", nkeys);
    snprintf(dbuf, sizeof(dbuf), "%zu", vlen);
    char *argv[] = {(char *)exe, "--cluster", "-h", "127.0.0.1", "-p", portbuf,
                    "-t",        "set,get",   "-c", cbuf,        "-n", nbuf,
                    "-d",        dbuf,        "-r", rbuf,        NULL};
    st = run_capture(argv, timeout_s, &ps);
    if (st != 0) {
        complain("%s exited with status %d: ...%s", exe, st, ps.tail);
        return -1;
    }
    for (int k = 0; k < 2; k++) {
        if (ps.summary_rps[k] <= 0 || !ps.have_latency[k]) {
            complain("no %s summary in the output of %s: ...%s", op_name[k],
                     exe, ps.tail);
            return -1;
        }
        /* A run shorter than one tick has no progress line: then the
         * summary's rate is all there is. */
        res[k].rate = ps.overall[k] > 0 ? ps.overall[k] : ps.summary_rps[k];
        res[k].p50_us = ps.p50_ms[k] * 1e3;
        res[k].p99_us = ps.p99_ms[k] * 1e3;
        res[k].ok = 1;
        res[k].summary_rate = ps.summary_rps[k];
        res[k].summary_only = ps.overall[k] <= 0;
    }
    return 0;
}

/* ---- options ------------------------------------------------------------ */

typedef struct {
    int clients;
    long requests;
    unsigned nkeys;
    size_t vlen;
    int repeat;
    double limit_s;
    int check;
    const char *rb_exe;
} opts_t;

static const char usage_text[] =
    "usage: uc-cluster-bench [--clients C] [--requests N] [--keys K]\n"
    "                        [--value-size D] [--repeat R] [--limit S]\n"
    "                        [--redis-benchmark PATH] [--check]\n"
    "\n"
    "  --clients C          library threads (pool of C) and redis-benchmark\n"
    "                       clients, -c C (default 50)\n"
    "  --requests N         calls per operation on each side, -n N\n"
    "                       (default 200000)\n"
    "  --keys K             -r K: K keys per primary on both sides\n"
    "                       (default 100000)\n"
    "  --value-size D       value bytes, -d D (default 200)\n"
    "  --repeat R           rounds; each figure is the best of them\n"
    "                       (default 3)\n"
    "  --limit S            seconds one library operation or one\n"
    "                       redis-benchmark run may take before it counts\n"
    "                       as failed (default 30)\n"
    "  --check              exit 1 when a ratio is below its target\n";

static int parse_opts(int argc, char **argv, opts_t *o)
{
    o->clients = 50;
    o->requests = 200000;
    o->nkeys = 100000;
    o->vlen = 200;
    o->repeat = 3;
    o->limit_s = 30.0;
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
            continue;
        } else if (strcmp(a, "--redis-benchmark") == 0 && v != NULL) {
            o->rb_exe = v;
        } else if (strcmp(a, "--clients") == 0 &&
                   uc_bench_parse_long(v, 1, CLIENTS_MAX, &n) == 0) {
            o->clients = (int)n;
        } else if (strcmp(a, "--requests") == 0 &&
                   uc_bench_parse_long(v, 1000, 100000000, &n) == 0) {
            o->requests = n;
        } else if (strcmp(a, "--keys") == 0 &&
                   uc_bench_parse_long(v, 1, 10000000, &n) == 0) {
            o->nkeys = (unsigned)n;
        } else if (strcmp(a, "--value-size") == 0 &&
                   uc_bench_parse_long(v, 1, 1024 * 1024, &n) == 0) {
            o->vlen = (size_t)n;
        } else if (strcmp(a, "--repeat") == 0 &&
                   uc_bench_parse_long(v, 1, 20, &n) == 0) {
            o->repeat = (int)n;
        } else if (strcmp(a, "--limit") == 0 &&
                   uc_bench_parse_long(v, 1, 3600, &n) == 0) {
            o->limit_s = (double)n;
        } else {
            fprintf(stderr, "uc-cluster-bench: bad argument '%s'\n%s", a,
                    usage_text);
            return -1;
        }
        i++;
    }
    return 0;
}

/* ---- report ------------------------------------------------------------- */

/* Best rate of all rounds for each side; failures and counters add up. */
typedef struct {
    result_t lib[2], ref[2];
    cluster_stats_t lib_stats, ref_stats;
    int rb_failed;
} totals_t;

static void keep_best(result_t *best, const result_t *cur)
{
    result_t sum = *best;

    sum.calls += cur->calls;
    sum.errors += cur->errors;
    sum.misses += cur->misses;
    if (best->errors == 0) {
        sum.first_error = cur->first_error;
    }
    sum.cut |= cur->cut;
    sum.summary_only |= cur->summary_only;
    if (cur->ok && (!best->ok || cur->rate > best->rate)) {
        *best = *cur;
    }
    best->calls = sum.calls;
    best->errors = sum.errors;
    best->misses = sum.misses;
    best->first_error = sum.first_error;
    best->cut = sum.cut;
    best->summary_only = sum.summary_only;
}

static void print_result(const result_t *r)
{
    if (!r->ok) {
        printf(" %12s %8s %8s", "failed", "-", "-");
        return;
    }
    printf(" %12.0f %8.1f %8.1f", r->rate, r->p50_us, r->p99_us);
}

/* "33.3 / 33.4 / 33.3 %": each primary's share of the calls the primaries
 * executed (a replica executes the writes it replicates as well, so only
 * primaries count). */
static void print_shares(const cluster_stats_t *s, const int *primary, op_t op)
{
    uint64_t sum = 0;
    int first = 1;

    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        sum += primary[i] ? s->node[i].calls[op] : 0;
    }
    if (sum == 0) {
        printf("none");
        return;
    }
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        if (primary[i]) {
            printf("%s%.1f", first ? "" : " / ",
                   100.0 * (double)s->node[i].calls[op] / (double)sum);
            first = 0;
        }
    }
    printf(" %%");
}

/* Calls of op the nodes answered with a redirect or refused. */
static uint64_t sum_rejected(const cluster_stats_t *s, op_t op)
{
    uint64_t n = 0;

    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        n += s->node[i].rejected[op];
    }
    return n;
}

/* GETs the replicas executed (a client reading from replicas). */
static uint64_t replica_gets(const cluster_stats_t *s, const int *primary)
{
    uint64_t n = 0;

    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        n += primary[i] ? 0 : s->node[i].calls[OP_GET];
    }
    return n;
}

static double hit_pct(const cluster_stats_t *s)
{
    uint64_t hits = 0, reads = 0;

    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        hits += s->node[i].hits;
        reads += s->node[i].hits + s->node[i].misses;
    }
    return reads > 0 ? 100.0 * (double)hits / (double)reads : 0.0;
}

#define PAD "                     " /* under the name column */

/*
 * Prints one operation's line and what the nodes saw. Returns 1 when the
 * ratio misses its target, 2 when a side failed (no ratio), 0 otherwise.
 */
static int print_op(op_t op, const totals_t *t, const int *primary)
{
    const result_t *lib = &t->lib[op];
    const result_t *ref = &t->ref[op];
    uint64_t lib_rej = sum_rejected(&t->lib_stats, op);
    uint64_t ref_rej = sum_rejected(&t->ref_stats, op);
    char name[32];
    int verdict;

    snprintf(name, sizeof(name), "%s ops/s", op_name[op]);
    printf("%-18s", name);
    print_result(lib);
    printf("   |");
    print_result(ref);
    if (lib->errors > 0 || lib->cut || !lib->ok) {
        verdict = 2;
        printf(" |     -  >= %.1fx  %s\n", TARGET_RATIO,
               lib->errors > 0 ? "ERRORS" : "FAILED");
    } else if (!ref->ok) {
        verdict = 2;
        printf(" |     -  >= %.1fx  FAILED\n", TARGET_RATIO);
    } else if (ref->summary_only) {
        verdict = 2;
        printf(" |     -  >= %.1fx  SHORT\n", TARGET_RATIO);
    } else {
        double ratio = lib->rate / ref->rate;
        verdict = ratio < TARGET_RATIO;
        printf(" | %5.2fx  >= %.1fx  %s\n", ratio, TARGET_RATIO,
               verdict ? "BELOW" : "ok");
    }
    printf(PAD "executed per primary: library ");
    print_shares(&t->lib_stats, primary, op);
    printf(", reference ");
    print_shares(&t->ref_stats, primary, op);
    printf("\n");
    if (op == OP_GET) {
        printf(PAD "GET hits at the nodes: library %.1f %%, reference "
                   "%.1f %%\n",
               hit_pct(&t->lib_stats), hit_pct(&t->ref_stats));
        if (replica_gets(&t->lib_stats, primary) > 0) {
            printf(PAD "GETs executed by replicas: library %" PRIu64 "\n",
                   replica_gets(&t->lib_stats, primary));
        }
    }
    if (ref->ok) {
        printf(PAD "redis-benchmark's own summary: %.0f/s%s\n",
               ref->summary_rate,
               ref->summary_only ? " (no progress reading: the run was "
                                   "too short to measure, raise --requests)"
                                 : "");
    }
    if (lib_rej > 0 || ref_rej > 0) {
        printf(PAD "answered with a redirect (MOVED/ASK), not executed: "
                   "library %" PRIu64 ", reference %" PRIu64 "\n",
               lib_rej, ref_rej);
    }
    if (lib->errors > 0) {
        printf(PAD "library: %" PRIu64 " of %" PRIu64 " calls FAILED "
                   "(%.1f %%), first: %s (%s)\n",
               lib->errors, lib->calls,
               100.0 * (double)lib->errors / (double)lib->calls,
               uc_err_name(lib->first_error), uc_strerror(lib->first_error));
    }
    if (lib->cut) {
        printf(PAD "library: stopped before all calls were made (time "
                   "limit or signal)\n");
    }
    if (lib->misses > 0 && op == OP_GET) {
        printf(PAD "library: %" PRIu64 " GETs found no value (counted as "
                   "working calls)\n",
               lib->misses);
    }
    return verdict;
}

/* ---- main --------------------------------------------------------------- */

/*
 * One round: empty cluster, library SET then GET; empty cluster,
 * redis-benchmark SET and GET. Returns -1 when the round could not run
 * (the cluster stopped answering, threads, a signal); a failed
 * redis-benchmark run is counted in t->rb_failed instead.
 */
static int round_once(const opts_t *o, const uc_test_cluster_t *c,
                      const int *primary, unsigned lib_keys, uc_cache_t *cache,
                      const char *value, totals_t *t)
{
    cluster_stats_t before, after;
    result_t cur[2];

    if (flush_primaries(c, primary) != 0 || read_stats(c, &before) != 0) {
        return -1;
    }
    for (int op = 0; op < 2; op++) {
        if (run_library(cache, (op_t)op, o->clients, o->requests, lib_keys,
                        value, o->vlen, o->limit_s, &cur[op]) != 0) {
            return -1;
        }
        keep_best(&t->lib[op], &cur[op]);
        if (interrupted()) {
            return -1;
        }
    }
    if (read_stats(c, &after) != 0) {
        return -1;
    }
    add_delta(&t->lib_stats, &before, &after);
    if (flush_primaries(c, primary) != 0 || read_stats(c, &before) != 0) {
        return -1;
    }
    if (run_rb(o->rb_exe, c->node[0].port, o->clients, o->requests, o->nkeys,
               o->vlen, o->limit_s * 2.0 + 30.0, cur) != 0) {
        t->rb_failed++;
        if (interrupted()) {
            return -1;
        }
    } else {
        keep_best(&t->ref[OP_SET], &cur[OP_SET]);
        keep_best(&t->ref[OP_GET], &cur[OP_GET]);
    }
    if (read_stats(c, &after) != 0) {
        return -1;
    }
    add_delta(&t->ref_stats, &before, &after);
    return 0;
}

static int bench(const opts_t *o, uc_test_cluster_t *c, const char *value,
                 int *below)
{
    totals_t t;
    log_capture_t lc;
    uc_cache_t *cache = NULL;
    int primary[UC_TEST_CLUSTER_NODES] = {0};
    int nprimary = 0;
    char version[32];
    unsigned lib_keys;
    int failed = 0;
    int rc = -1;

    memset(&t, 0, sizeof(t));
    memset(&lc, 0, sizeof(lc));
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        primary[i] = uc_test_cluster_is_primary(c, i) == 1;
        nprimary += primary[i];
    }
    server_version(c, version, sizeof(version));
    printf("Redis Cluster %s: %d primaries + %d replicas on 127.0.0.1 ports",
           version, nprimary, UC_TEST_CLUSTER_NODES - nprimary);
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        printf(" %d%s", c->node[i].port, primary[i] ? "" : "r");
    }
    printf(" (r: replica),\nno persistence, node timeout 1000 ms, ready in "
           "%.1f s\n",
           (double)c->create_ms / 1e3);
    /* redis-benchmark --cluster -r K draws K numbers under each primary's
     * hash tag: K keys per primary. The library draws from as many keys,
     * so that both sides touch the same number and their GETs hit as
     * often. */
    lib_keys = o->nkeys * (unsigned)nprimary;
    printf("%d threads and %d clients, %ld calls per operation, %zu-byte "
           "values, -r %u:\n%u keys per primary (%u in all) on both sides, "
           "both seeded with 127.0.0.1:%d,\nlibrary near cache off, best of "
           "%d rounds\n\n",
           o->clients, o->clients, o->requests, o->vlen, o->nkeys, o->nkeys,
           lib_keys, c->node[0].port, o->repeat);
    fflush(stdout);
    if (nprimary != 3) {
        complain("expected 3 primaries, found %d", nprimary);
        return -1;
    }
    if (open_cache(c, o->clients, &lc, &cache) != UC_OK) {
        return -1;
    }
    for (int r = 0; r < o->repeat; r++) {
        if (round_once(o, c, primary, lib_keys, cache, value, &t) != 0) {
            if (interrupted()) {
                complain("interrupted");
            } else {
                complain("round %d failed", r + 1);
            }
            goto cleanup;
        }
    }
    printf("%-18s %12s %8s %8s   | %12s %8s %8s | %6s %7s\n", "", "library",
           "p50 us", "p99 us", "reference", "p50 us", "p99 us", "ratio",
           "target");
    for (int op = 0; op < 2; op++) {
        int v = print_op((op_t)op, &t, primary);
        *below += v == 1;
        failed += v == 2;
    }
    printf("%-18s   (reference: redis-benchmark --cluster; its clients are "
           "spread over the\n%-18s    primaries, each on keys with a hash tag "
           "of a slot of its own node)\n",
           "", "");
    if (atomic_load_explicit(&lc.ready, memory_order_acquire)) {
        printf("library log: %lu warning(s), first: %s\n",
               atomic_load(&lc.count), lc.first);
    }
    if (t.rb_failed > 0) {
        printf("%d redis-benchmark run(s) FAILED: this run is not a "
               "result\n",
               t.rb_failed);
        goto cleanup;
    }
    if (failed > 0) {
        printf("%d figure(s) missing (ERRORS, FAILED or SHORT above): this "
               "run is not a result\n",
               failed);
        goto cleanup;
    }
    rc = 0;
cleanup:
    uc_cache_destroy(cache);
    return rc;
}

int main(int argc, char **argv)
{
    static uc_test_cluster_t cluster;
    opts_t o;
    char why[256] = "";
    char *value;
    int below = 0;
    uint64_t t0 = uc_bench_now_ns();
    int started;
    int rc = -1;

    memset(&o, 0, sizeof(o));
    if (parse_opts(argc, argv, &o) != 0) {
        return 2;
    }
    if (!uc_test_cluster_available(why, sizeof(why))) {
        complain("%s", why);
        return 2;
    }
    value = malloc(o.vlen);
    if (value == NULL) {
        complain("out of memory");
        return 2;
    }
    memset(value, 'x', o.vlen);
    install_handlers();
    printf("uc-cluster-bench: libutxocache %s, %ld online cpus, load %.2f\n",
           uc_version(), sysconf(_SC_NPROCESSORS_ONLN), load1());
    fflush(stdout);
    started = uc_test_cluster_start(&cluster) == 0;
    atomic_store(&g_cluster_nodes, &cluster);
    if (started && !interrupted()) {
        rc = bench(&o, &cluster, value, &below);
    } else {
        complain(interrupted() ? "interrupted" : "the cluster did not start");
    }
    atomic_store(&g_cluster_nodes, NULL);
    uc_test_cluster_stop(&cluster);
    free(value);
    printf("\nwhole run: %.1f s, load %.2f at the end%s\n",
           (double)(uc_bench_now_ns() - t0) / 1e9, load1(),
           load1() > (double)sysconf(_SC_NPROCESSORS_ONLN) + 2.0
               ? " (other work ran too: figures are noisy)"
               : "");
    if (interrupted()) {
        return 128 + atomic_load(&g_signal);
    }
    if (rc != 0) {
        return 2;
    }
    return o.check && below > 0 ? 1 : 0;
}
