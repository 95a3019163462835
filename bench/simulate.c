/* SPDX-License-Identifier: MIT */
/*
 * uc-simulate: utxoiq-api under a realistic workload, run three ways (no
 * cache, Redis only, near cache in front of Redis), with the figures that
 * say what the cache buys: hit rate per keyspace and tier, database
 * queries against the same workload without the cache, client latency per
 * endpoint, stale answers, loads per write, and a checker that every read
 * of an insight's statistics reflects the ratings acknowledged before it
 * started. It starts everything itself on free loopback ports in a
 * temporary directory (tests/support, compiled in): a seeded database
 * (SQLite, or PostgreSQL with --db pg), one redis-server per mode and the
 * service, and stops them again. The mix, the formulas and the report are
 * described in docs/simulate.md. Exit status: 0 when every mode ran and no
 * stale read was seen, 1 when a stale read was seen (or, with --check, a
 * target was missed), 2 when a run failed.
 *
 * Warm on write (the library loading a hot entry again after the write
 * that invalidated it) gets figures of its own: the statistics' hit rate
 * beside its bound 1 - distinct entries / reads, feedback_stats loads per
 * feedback write (and, on PostgreSQL, the statistics query's calls), the
 * latency of the first read of a hot insight after a write beside that of
 * a hit, and the refill counters; --refill-off runs the same mix without.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Now plus offset_s as naive ISO 8601 in UTC with microseconds. */
static void naive_utc(long offset_s, char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t t = ts.tv_sec + offset_s;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%06ld", (long)(ts.tv_nsec / 1000));
}

#include "api_server.h"
#include "bench_util.h"
#include "pg_server.h"
#include "redis_server.h"
#include "util.h"

#ifndef UC_SIM_API_BINARY
#define UC_SIM_API_BINARY "utxoiq-api"
#endif
#ifndef UC_SIM_REPORT_DIR
#define UC_SIM_REPORT_DIR "."
#endif

#define MAX_USERS 1024
#define MAX_JOBS 64
#define MAX_SECONDS 3600
#define MAX_KEYSPACES 32
#define BODY_CAP (1 << 20)
#define ZIPF_S 0.99
#define EXTRA_JOBS 14
#define STALE_SHOWN 8
#define HOT_RANKS 1000
/* How long an insight must have been in the library's top list before a
 * write for the read after it to count as the read of a hot insight: the
 * library's own list is at most a second old, the simulator's a quarter. */
#define HOT_STEADY_NS 1250000000ull
#define SVC_ENV_MAX 4

/* ---- the mix --------------------------------------------------------- */

enum {
    EP_STATS,
    EP_STATS_PATH,
    EP_COMMENTS,
    EP_USER,
    EP_JOB,
    EP_JOBS,
    EP_METRICS,
    EP_AGG,
    EP_RATE,
    EP_COMMENT,
    EP_FLAG,
    EP_PROGRESS,
    EP_METRIC_POST,
    EP_COUNT
};

/* Weights per 10000 requests: 95 % reads, 5 % writes (docs/simulate.md). */
static const struct {
    const char *name;
    int weight;
    int write;
} EPS[EP_COUNT] = {
    [EP_STATS] = {"GET feedback/stats?insight_id", 4000, 0},
    [EP_STATS_PATH] = {"GET feedback/stats/{id}", 2000, 0},
    [EP_COMMENTS] = {"GET feedback/comments", 1000, 0},
    [EP_USER] = {"GET feedback/user", 500, 0},
    [EP_JOB] = {"GET backfill/{job_id}", 700, 0},
    [EP_JOBS] = {"GET backfill/status", 300, 0},
    [EP_METRICS] = {"GET metrics (recent page)", 500, 0},
    [EP_AGG] = {"GET metrics/aggregate", 500, 0},
    [EP_RATE] = {"POST feedback/rate", 200, 1},
    [EP_COMMENT] = {"POST feedback/comment", 100, 1},
    [EP_FLAG] = {"POST feedback/flag", 50, 1},
    [EP_PROGRESS] = {"POST backfill/progress", 50, 1},
    [EP_METRIC_POST] = {"POST metrics", 100, 1},
};

/* The weights in use: EPS's, or scaled so that writes make --writes per
 * cent of the mix (each side keeping its own proportions). */
static int g_weight[EP_COUNT];
static double g_zipf_s = ZIPF_S;

static void set_weights(double writes_pct)
{
    int wsum = 0, rsum = 0, total = 0, last_read = EP_STATS;

    for (int e = 0; e < EP_COUNT; e++) {
        if (EPS[e].write) {
            wsum += EPS[e].weight;
        } else {
            rsum += EPS[e].weight;
        }
    }
    for (int e = 0; e < EP_COUNT; e++) {
        double share = EPS[e].write
                           ? writes_pct * 100.0 / (double)wsum
                           : (100.0 - writes_pct) * 100.0 / (double)rsum;
        g_weight[e] = (int)((double)EPS[e].weight * share + 0.5);
        total += g_weight[e];
    }
    /* Rounding: the first read takes what is left of 10000. */
    g_weight[last_read] += 10000 - total;
}

static const char *const SERVICES[] = {"web-api", "insight-generator",
                                       "chain-ingestor", "notifier"};
static const char *const TYPES[] = {"latency_ms", "cpu_percent",
                                    "requests_per_min"};
static const char *const UNITS[] = {"ms", "percent", "count"};
static const char *const FLAGS[] = {"inaccurate", "misleading", "spam"};

enum { MODE_NOCACHE, MODE_REDIS, MODE_NEAR, MODE_COUNT };
static const char *const MODE_NAME[] = {"no cache", "redis", "near+redis"};
static const char *const MODE_ID[] = {"nocache", "redis", "near"};

/* X-Cache values, and none for an answer the cache had no part in. */
enum { XC_HIT, XC_MISS, XC_BYPASS, XC_STALE, XC_NONE, XC_COUNT };
static const char *const XC_NAME[] = {"HIT", "MISS", "BYPASS", "STALE", "-"};

/* ---- options --------------------------------------------------------- */

typedef struct {
    long insights;
    long duration_s;
    long warmup_s;
    long threads;
    long users;
    int pg;
    int prefill;
    int check;
    int sanity;
    int inject;
    int keep;
    int refill_off; /* the service runs with UTXOCACHE_REFILL_TOP=0 */
    long hot;       /* Zipf ranks that are hot for the read after a write */
    const char *svc_env[SVC_ENV_MAX]; /* --service-env VAR=VALUE */
    size_t nsvc_env;
    unsigned modes; /* bit per MODE_* */
    double writes_pct;
    const char *report;
    const char *api_bin;
} opts_t;

/* ---- shared state of a run ------------------------------------------- */

typedef struct {
    char id[40];
    long start_block;
    long end_block;
    atomic_uint progress;
} job_t;

typedef struct {
    char insight[32];
    int got;
    int want;
    double at_s;
} violation_t;

/*
 * The stale-read checker's state for one insight (see check_stats). The
 * simulator's own users never rated anything before the run, so each
 * (insight, user) pair rated for the first time adds exactly one to
 * total_ratings; those writes are "counted" and tracked here.
 */
typedef struct {
    atomic_int started;    /* counted rating writes sent */
    atomic_int acked;      /* counted rating writes answered 200 */
    atomic_int lb;         /* lower bound of the ratings not counted here */
    atomic_uchar poisoned; /* a counted write failed: no longer checked */
} insight_state_t;

typedef struct {
    const opts_t *o;
    int port;
    int mode;
    long n;
    const double *zipf_cdf;
    const uint32_t *perm;
    insight_state_t *ins;
    const uint32_t *rank_of; /* insight id -> Zipf rank */
    /* Per insight: feedback writes (rate, comment, flag) answered 200, the
     * write count a read has claimed as "the first read after", and whether
     * it was read in the mode (bit 0) and in the measured window (bit 1). */
    atomic_int *fb_acked;
    atomic_int *fb_claimed;
    /* Per insight, from the library's own top --hot of feedback_stats read
     * four times a second (hot_watch_main): since when it has been in every
     * reading (ns, 0: not in the last one); and, taken when its last
     * feedback write was acknowledged, that time and the write's. */
    _Atomic uint64_t *hot_since;
    _Atomic uint64_t *fb_hot_since;
    _Atomic uint64_t *fb_write_ns;
    /* Per insight: feedback writes sent and not yet answered. */
    atomic_int *fb_inflight;
    atomic_int hot_stop;
    atomic_ulong hot_readings, hot_failures;
    atomic_uchar *seen;
    atomic_ulong distinct; /* insights read in the window */
    atomic_ulong cold;     /* ... of those, never read before in the mode */
    atomic_uchar *rated;   /* bit (insight * users + user): pair rated */
    char (*user_keys)[80];
    struct curl_slist **user_hdr;
    struct curl_slist **user_hdr_post;
    struct curl_slist *svc_hdr_post;
    job_t *jobs;
    size_t njobs;
    double *job_cdf;
    atomic_int stop;
    atomic_int measuring;
    uint64_t t0_ns; /* start of the measured window */
    /* checker results over the whole mode (warm-up included) */
    atomic_ulong checked;
    atomic_ulong informative;
    atomic_ulong violations;
    atomic_int injecting;          /* the behind-the-back writes run */
    atomic_ulong injected_flagged; /* violations those reads showed */
    pthread_mutex_t vmu;
    violation_t shown[STALE_SHOWN];
    size_t nshown;
} run_t;

typedef struct {
    uint32_t *v;
    size_t n;
    size_t cap;
} samples_t;

typedef struct {
    run_t *r;
    int index;
    CURL *c;
    uint64_t rng;
    char *body;
    size_t body_len;
    int body_over;
    char xcache[16];
    long last_idx;   /* the insight of the last statistics read */
    int after_write; /* ... it was the first read after a write of it */
    int overlapped;  /* ... and another write of it was in flight */
    uint64_t rawl_overlapped; /* such reads left out of rawl_lat */
    samples_t lat[EP_COUNT];
    samples_t hit_lat; /* statistics reads answered X-Cache: HIT */
    samples_t raw_lat; /* first reads of a hot insight after its write */
    uint64_t raw_xc[XC_COUNT];
    samples_t
        rawl_lat; /* ... of one the library ranked hot (lib_hot_at_write) */
    uint64_t rawl_xc[XC_COUNT];
    uint64_t count[EP_COUNT];
    uint64_t errors[EP_COUNT];
    uint64_t xc[EP_COUNT][XC_COUNT];
    uint32_t per_s[MAX_SECONDS];
    uint64_t first_error_status;
    char first_error[160];
} worker_t;

/* One keyspace's counters at a point in time. */
typedef struct {
    char name[64];
    uint64_t hits, misses, loads, bypasses, stale_served, near_hits;
    uint64_t near_misses, redis_hits, redis_misses, invalidations, sets;
    uint64_t set_errors, flight_joins;
    uint64_t refills, refill_hits, refill_skipped_cold, refill_skipped_rate;
    uint64_t refill_skipped_overflow, refill_skipped_breaker;
    uint64_t refill_raced, refill_wait_timeouts;
} ks_snap_t;

typedef struct {
    ks_snap_t ks[MAX_KEYSPACES];
    size_t n;
    /* The totals: counters of tag targets (a write's refills by tag) are
     * counted there only. */
    ks_snap_t all;
} stats_snap_t;

/* What one mode measured, kept for the table and the report. */
typedef struct {
    int ran;
    double seconds;
    uint64_t count[EP_COUNT];
    uint64_t errors[EP_COUNT];
    uint64_t xc[EP_COUNT][XC_COUNT];
    uint32_t p50[EP_COUNT], p99[EP_COUNT];
    samples_t stats_lat; /* EP_STATS and EP_STATS_PATH together, sorted */
    uint32_t per_s[MAX_SECONDS];
    stats_snap_t delta;
    uint64_t reads, writes, uncached_reads;
    uint64_t loads;
    double db_queries;       /* loads + uncached reads + writes */
    long long pg_statements; /* -1: not measured */
    uint64_t checked, informative, violations;
    violation_t shown[STALE_SHOWN];
    size_t nshown;
    long injected, injected_flagged; /* -1: not run */
    /* warm on write, feedback_stats, over the measured window */
    uint64_t fs_reads, fs_hits; /* statistics reads, and X-Cache HITs */
    uint64_t distinct, cold;    /* insights read in it, first read in it */
    uint64_t fb_writes;         /* rate, comment, flag answered 200 */
    long long pg_fs_queries;    /* the statistics query's calls; -1 */
    uint32_t hit_p99, raw_p50, raw_p99;
    uint64_t raw_n, raw_xc[XC_COUNT];
    uint32_t rawl_p50, rawl_p99; /* hot by the library's record */
    uint64_t rawl_n, rawl_xc[XC_COUNT], rawl_overlapped;
    uint64_t hot_readings, hot_failures;
    double fs_hit_series[MAX_SECONDS]; /* feedback_stats hit rate each s */
    size_t nseries;
} mode_result_t;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double now_s(void)
{
    return (double)uc_bench_now_ns() / 1e9;
}

/* ---- small helpers ---------------------------------------------------- */

static int samples_push(samples_t *s, uint32_t v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap == 0 ? 4096 : s->cap * 2;
        uint32_t *p;
        if (cap > ((size_t)1 << 28)) {
            return -1; /* the hard cap: later samples are dropped */
        }
        p = realloc(s->v, cap * sizeof(*p));
        if (p == NULL) {
            return -1;
        }
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile of sorted samples (nearest rank), 0 when empty. */
static uint32_t quantile(const samples_t *s, double p)
{
    size_t i;
    if (s->n == 0) {
        return 0;
    }
    i = (size_t)ceil(p * (double)s->n);
    if (i > 0) {
        i--;
    }
    return s->v[i < s->n ? i : s->n - 1];
}

static double rnd01(uint64_t *s)
{
    return (double)(uc_bench_rng_next(s) >> 11) / 9007199254740992.0;
}

/* Index of the first cdf entry >= u (binary search over n entries). */
static size_t pick_cdf(const double *cdf, size_t n, double u)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] < u) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* A new array of the normalised cumulative Zipf(s) weights of n ranks. */
static double *zipf_cdf_new(size_t n, double s)
{
    double *cdf = malloc(n * sizeof(*cdf));
    double sum = 0.0;
    if (cdf == NULL) {
        return NULL;
    }
    for (size_t k = 0; k < n; k++) {
        sum += 1.0 / pow((double)(k + 1), s);
        cdf[k] = sum;
    }
    for (size_t k = 0; k < n; k++) {
        cdf[k] /= sum;
    }
    cdf[n - 1] = 1.0;
    return cdf;
}

static void insight_name(long idx, char *buf, size_t cap)
{
    snprintf(buf, cap, "insight-%05ld", idx + 1);
}

/* ---- HTTP ------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    worker_t *w = arg;
    size_t add = size * n;
    if (w->body_len + add + 1 > BODY_CAP) {
        w->body_over = 1;
        return 0;
    }
    memcpy(w->body + w->body_len, p, add);
    w->body_len += add;
    w->body[w->body_len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    worker_t *w = arg;
    size_t len = size * n;
    if (len > 8 && strncasecmp(p, "X-Cache:", 8) == 0) {
        size_t k = 0;
        const char *v = p + 8;
        while (*v == ' ') {
            v++;
        }
        while (k + 1 < sizeof(w->xcache) && v[k] != '\r' && v[k] != '\n' &&
               v + k < p + len) {
            w->xcache[k] = v[k];
            k++;
        }
        w->xcache[k] = '\0';
    }
    return len;
}

static CURL *curl_new(worker_t *w)
{
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return NULL;
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, w);
    return c;
}

/*
 * One request on the worker's keep-alive handle: path on the service,
 * hdrs (may be NULL), body (NULL: GET). Returns the HTTP status, or -1
 * when no answer arrived (timeout, connection refused, body over the cap).
 * The answer is in w->body and w->xcache.
 */
static long http(worker_t *w, const char *path, struct curl_slist *hdrs,
                 const char *body)
{
    char url[512];
    long status = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", w->r->port, path);
    w->body_len = 0;
    w->body[0] = '\0';
    w->body_over = 0;
    w->xcache[0] = '\0';
    curl_easy_setopt(w->c, CURLOPT_URL, url);
    curl_easy_setopt(w->c, CURLOPT_HTTPHEADER, hdrs);
    if (body != NULL) {
        curl_easy_setopt(w->c, CURLOPT_POST, 1L);
        curl_easy_setopt(w->c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(w->c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(w->c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(w->c);
    if (rc != CURLE_OK) {
        snprintf(w->first_error, sizeof(w->first_error), "%s: %s", path,
                 curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(w->c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static int xc_index(const char *v)
{
    for (int i = 0; i < XC_NONE; i++) {
        if (strcmp(v, XC_NAME[i]) == 0) {
            return i;
        }
    }
    return XC_NONE;
}

/* ---- the stale-read checker -------------------------------------------- */

/*
 * How it works. For insight i, total_ratings = B + C where B (the seed's
 * ratings and any others the simulator did not count) never changes during
 * a mode and C is the number of counted writes committed so far. A read
 * that starts after a counted write was acknowledged must include it: with
 * a = acked before the read was sent, the answer T must satisfy
 * T >= B + a. B is unknown, but every answer bounds it from below: T can
 * only include counted writes that had been sent by the time it arrived
 * (s), so B >= T - s, and lb keeps the largest such bound. The check
 * T >= lb + a is therefore sound (no false alarm while only this program
 * writes and nothing deletes), and tight once one answer was read while no
 * counted write of the insight was in flight.
 */
static void check_stats(run_t *r, long idx, int acked_before, worker_t *w)
{
    insight_state_t *st = &r->ins[idx];
    json_t *j, *v;
    int total, sent, lb;

    if (atomic_load(&st->poisoned)) {
        return;
    }
    j = json_loadb(w->body, w->body_len, 0, NULL);
    v = j != NULL ? json_object_get(j, "total_ratings") : NULL;
    if (!json_is_integer(v)) {
        json_decref(j);
        return;
    }
    total = (int)json_integer_value(v);
    json_decref(j);
    sent = atomic_load(&st->started);
    lb = atomic_load(&st->lb);
    atomic_fetch_add(&r->checked, 1);
    if (acked_before > 0) {
        atomic_fetch_add(&r->informative, 1);
    }
    if (total < lb + acked_before && atomic_load(&r->injecting)) {
        atomic_fetch_add(&r->injected_flagged, 1);
    } else if (total < lb + acked_before) {
        atomic_fetch_add(&r->violations, 1);
        pthread_mutex_lock(&r->vmu);
        if (r->nshown < STALE_SHOWN) {
            violation_t *x = &r->shown[r->nshown++];
            insight_name(idx, x->insight, sizeof(x->insight));
            x->got = total;
            x->want = lb + acked_before;
            x->at_s = (double)(uc_bench_now_ns() - r->t0_ns) / 1e9;
        }
        pthread_mutex_unlock(&r->vmu);
    }
    while (total - sent > lb &&
           !atomic_compare_exchange_weak(&st->lb, &lb, total - sent)) {
    }
}

/* Claims the (insight, user) pair; 1 when it had never been rated. */
static int claim_pair(run_t *r, long idx, long user)
{
    size_t bit = (size_t)idx * (size_t)r->o->users + (size_t)user;
    unsigned char m = (unsigned char)(1u << (bit & 7));
    return (atomic_fetch_or(&r->rated[bit >> 3], m) & m) == 0;
}

/* ---- one request of the mix ------------------------------------------- */

/*
 * Called before a statistics read of insight idx is sent: 1 when a
 * feedback write of it was acknowledged since the last read that claimed
 * one, and this read claims it (it is the first read to start after that
 * write), 0 otherwise.
 */
static int claim_after_write(run_t *r, long idx)
{
    int acked = atomic_load(&r->fb_acked[idx]);
    int claimed = atomic_load(&r->fb_claimed[idx]);
    while (acked > claimed) {
        if (atomic_compare_exchange_weak(&r->fb_claimed[idx], &claimed,
                                         acked)) {
            return 1;
        }
    }
    return 0;
}

/* A feedback write of insight idx was acknowledged: whether the library
 * ranked it hot then is kept for the read after it. */
static void note_write(run_t *r, long idx)
{
    if (r->hot_since != NULL) {
        atomic_store(&r->fb_hot_since[idx], atomic_load(&r->hot_since[idx]));
        atomic_store(&r->fb_write_ns[idx], uc_bench_now_ns());
    }
    atomic_fetch_add(&r->fb_acked[idx], 1);
}

/*
 * Whether the library ranked insight idx hot for its last write: in every
 * reading of its top list from HOT_STEADY_NS before the write until now.
 * The library decides a tag's refill from a list it reads again each
 * second, so an insight that only just entered (or is about to leave) the
 * list may be judged either way; those are left out rather than guessed.
 */
static int lib_hot_at_write(const run_t *r, long idx)
{
    uint64_t since = atomic_load(&r->fb_hot_since[idx]);
    return since != 0 &&
           since + HOT_STEADY_NS <= atomic_load(&r->fb_write_ns[idx]) &&
           atomic_load(&r->hot_since[idx]) == since;
}

static long pick_insight(worker_t *w)
{
    run_t *r = w->r;
    size_t rank = pick_cdf(r->zipf_cdf, (size_t)r->n, rnd01(&w->rng));
    return (long)r->perm[rank];
}

static int pick_ep(worker_t *w)
{
    int x = (int)(uc_bench_rng_next(&w->rng) % 10000);
    for (int e = 0; e < EP_COUNT; e++) {
        if (x < g_weight[e]) {
            return e;
        }
        x -= g_weight[e];
    }
    return EP_STATS;
}

static long do_request(worker_t *w, int ep)
{
    run_t *r = w->r;
    char path[400], body[400], ins[32];
    long idx = -1, user, st;
    int acked = 0, counted = 0;
    size_t series = uc_bench_rng_next(&w->rng) % 12;
    const char *svc = SERVICES[series / 3], *typ = TYPES[series % 3];

    user = (long)(uc_bench_rng_next(&w->rng) % (uint64_t)r->o->users);
    switch (ep) {
    case EP_STATS:
    case EP_STATS_PATH:
        idx = pick_insight(w);
        insight_name(idx, ins, sizeof(ins));
        if (ep == EP_STATS) {
            snprintf(path, sizeof(path), "/api/v1/feedback/stats?insight_id=%s",
                     ins);
        } else {
            snprintf(path, sizeof(path), "/api/v1/feedback/stats/%s", ins);
        }
        acked = atomic_load(&r->ins[idx].acked);
        w->last_idx = idx;
        w->after_write = claim_after_write(r, idx);
        /* A second write of it in flight may invalidate the entry before
         * this read arrives, whatever the first write's refill did. */
        w->overlapped = w->after_write && atomic_load(&r->fb_inflight[idx]) > 0;
        st = http(w, path, NULL, NULL);
        if (st == 200) {
            check_stats(r, idx, acked, w);
        }
        return st;
    case EP_COMMENTS:
        idx = pick_insight(w);
        insight_name(idx, ins, sizeof(ins));
        snprintf(path, sizeof(path),
                 "/api/v1/feedback/comments?insight_id=%s&limit=20", ins);
        return http(w, path, NULL, NULL);
    case EP_USER:
        return http(w, "/api/v1/feedback/user?limit=20", r->user_hdr[user],
                    NULL);
    case EP_JOB: {
        size_t k = pick_cdf(r->job_cdf, r->njobs, rnd01(&w->rng));
        snprintf(path, sizeof(path), "/api/v1/monitoring/backfill/%s",
                 r->jobs[k].id);
        return http(w, path, NULL, NULL);
    }
    case EP_JOBS:
        return http(w,
                    uc_bench_rng_next(&w->rng) % 2 == 0
                        ? "/api/v1/monitoring/backfill/status?limit=50"
                        : "/api/v1/monitoring/backfill/"
                          "status?status=running&limit=50",
                    NULL, NULL);
    case EP_METRICS: {
        /* The original clients' query: the last hour up to now, in naive
         * UTC as Python's utcnow().isoformat() writes it. */
        char from[40], to[40];
        naive_utc(-3600, from, sizeof(from));
        naive_utc(0, to, sizeof(to));
        snprintf(path, sizeof(path),
                 "/api/v1/monitoring/metrics?service_name=%s&metric_type=%s"
                 "&start_time=%s&end_time=%s&limit=100",
                 svc, typ, from, to);
        return http(w, path, NULL, NULL);
    }
    case EP_AGG: {
        unsigned x = (unsigned)(uc_bench_rng_next(&w->rng) % 20);
        snprintf(path, sizeof(path),
                 "/api/v1/monitoring/metrics/aggregate?service_name=%s"
                 "&metric_type=%s&interval=%s",
                 svc, typ,
                 x < 14   ? "hour"
                 : x < 19 ? "day"
                          : "week");
        return http(w, path, NULL, NULL);
    }
    case EP_RATE:
        idx = pick_insight(w);
        insight_name(idx, ins, sizeof(ins));
        snprintf(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":%d}",
                 ins, 1 + (int)(uc_bench_rng_next(&w->rng) % 5));
        counted = claim_pair(r, idx, user);
        if (counted) {
            atomic_fetch_add(&r->ins[idx].started, 1);
        }
        atomic_fetch_add(&r->fb_inflight[idx], 1);
        st = http(w, "/api/v1/feedback/rate", r->user_hdr_post[user], body);
        atomic_fetch_sub(&r->fb_inflight[idx], 1);
        if (counted && st == 200) {
            atomic_fetch_add(&r->ins[idx].acked, 1);
        } else if (counted) {
            atomic_store(&r->ins[idx].poisoned, 1);
        }
        if (st == 200) {
            note_write(r, idx);
        }
        return st;
    case EP_COMMENT:
        idx = pick_insight(w);
        insight_name(idx, ins, sizeof(ins));
        snprintf(body, sizeof(body),
                 "{\"insight_id\":\"%s\",\"comment\":\"simulated comment "
                 "%" PRIu64 "\"}",
                 ins, uc_bench_rng_next(&w->rng) % 1000000);
        atomic_fetch_add(&r->fb_inflight[idx], 1);
        st = http(w, "/api/v1/feedback/comment", r->user_hdr_post[user], body);
        atomic_fetch_sub(&r->fb_inflight[idx], 1);
        if (st == 200) {
            note_write(r, idx);
        }
        return st;
    case EP_FLAG:
        idx = pick_insight(w);
        insight_name(idx, ins, sizeof(ins));
        snprintf(body, sizeof(body),
                 "{\"insight_id\":\"%s\",\"flag_type\":\"%s\"}", ins,
                 FLAGS[uc_bench_rng_next(&w->rng) % 3]);
        atomic_fetch_add(&r->fb_inflight[idx], 1);
        st = http(w, "/api/v1/feedback/flag", r->user_hdr_post[user], body);
        atomic_fetch_sub(&r->fb_inflight[idx], 1);
        if (st == 200) {
            note_write(r, idx);
        }
        return st;
    case EP_PROGRESS: {
        size_t k = pick_cdf(r->job_cdf, r->njobs, rnd01(&w->rng));
        job_t *j = &r->jobs[k];
        unsigned pct = 1 + atomic_fetch_add(&j->progress, 1) % 99;
        snprintf(path, sizeof(path),
                 "/api/v1/monitoring/backfill/progress?job_id=%s", j->id);
        snprintf(body, sizeof(body),
                 "{\"current_block\":%ld,\"progress_percentage\":%u}",
                 j->start_block + (j->end_block - j->start_block) * pct / 100,
                 pct);
        return http(w, path, r->svc_hdr_post, body);
    }
    case EP_METRIC_POST:
        snprintf(body, sizeof(body),
                 "{\"service_name\":\"%s\",\"metric_type\":\"%s\","
                 "\"metric_value\":%.2f,\"unit\":\"%s\"}",
                 svc, typ, 10.0 + rnd01(&w->rng) * 90.0, UNITS[series % 3]);
        return http(w, "/api/v1/monitoring/metrics", r->svc_hdr_post, body);
    }
    return -1;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    run_t *r = w->r;
    while (!atomic_load(&r->stop) && !interrupted) {
        int ep = pick_ep(w);
        int measuring = atomic_load(&r->measuring);
        uint64_t t = uc_bench_now_ns();
        w->after_write = 0;
        w->overlapped = 0;
        long st = do_request(w, ep);
        uint64_t t1 = uc_bench_now_ns();
        int in_window = measuring && atomic_load(&r->measuring);
        int stats_read = (ep == EP_STATS || ep == EP_STATS_PATH) && st == 200;
        if (stats_read) {
            unsigned bits = atomic_fetch_or(&r->seen[w->last_idx],
                                            (unsigned char)(in_window ? 3 : 1));
            if (in_window && (bits & 2) == 0) {
                atomic_fetch_add(&r->distinct, 1);
            }
            if (in_window && (bits & 1) == 0) {
                atomic_fetch_add(&r->cold, 1);
            }
        }
        if (!in_window) {
            continue; /* warm-up, or crossing the end of the window */
        }
        uint64_t us = (t1 - t) / 1000;
        uint32_t us32 = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        if (stats_read && xc_index(w->xcache) == XC_HIT) {
            (void)samples_push(&w->hit_lat, us32);
        }
        if (stats_read && w->after_write &&
            r->rank_of[w->last_idx] < (uint32_t)r->o->hot) {
            (void)samples_push(&w->raw_lat, us32);
            w->raw_xc[xc_index(w->xcache)]++;
        }
        if (stats_read && w->after_write && r->hot_since != NULL &&
            lib_hot_at_write(r, w->last_idx) && w->overlapped) {
            w->rawl_overlapped++;
        } else if (stats_read && w->after_write && r->hot_since != NULL &&
                   lib_hot_at_write(r, w->last_idx)) {
            (void)samples_push(&w->rawl_lat, us32);
            w->rawl_xc[xc_index(w->xcache)]++;
        }
        w->count[ep]++;
        (void)samples_push(&w->lat[ep],
                           us > UINT32_MAX ? UINT32_MAX : (uint32_t)us);
        if (st < 200 || st >= 300) {
            w->errors[ep]++;
            if (w->first_error_status == 0) {
                w->first_error_status = st < 0 ? 1 : (uint64_t)st;
                if (st > 0) {
                    snprintf(w->first_error, sizeof(w->first_error),
                             "%s: %ld %.100s", EPS[ep].name, st, w->body);
                }
            }
        } else {
            w->xc[ep][xc_index(w->xcache)]++;
        }
        uint64_t sec = (t1 - r->t0_ns) / 1000000000u;
        if (sec < MAX_SECONDS) {
            w->per_s[sec]++;
        }
    }
    return NULL;
}

/* ---- cache statistics --------------------------------------------------- */

static uint64_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) && json_integer_value(v) > 0
               ? (uint64_t)json_integer_value(v)
               : 0;
}

static void read_ks(json_t *o, const char *name, ks_snap_t *k)
{
    json_t *tiers = json_object_get(o, "tiers");
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->hits = jint(o, "hits");
    k->misses = jint(o, "misses");
    k->loads = jint(o, "loads");
    k->bypasses = jint(o, "bypasses");
    k->stale_served = jint(o, "stale_served");
    k->near_hits = jint(o, "near_hits");
    k->invalidations = jint(o, "invalidations");
    k->sets = jint(o, "sets");
    k->set_errors = jint(o, "set_errors");
    k->flight_joins = jint(o, "flight_joins");
    k->refills = jint(o, "refills");
    k->refill_hits = jint(o, "refill_hits");
    k->refill_skipped_cold = jint(o, "refill_skipped_cold");
    k->refill_skipped_rate = jint(o, "refill_skipped_rate");
    k->refill_skipped_overflow = jint(o, "refill_skipped_overflow");
    k->refill_skipped_breaker = jint(o, "refill_skipped_breaker");
    k->refill_raced = jint(o, "refill_raced");
    k->refill_wait_timeouts = jint(o, "refill_wait_timeouts");
    k->near_misses = jint(json_object_get(tiers, "near"), "misses");
    k->redis_hits = jint(json_object_get(tiers, "redis"), "hits");
    k->redis_misses = jint(json_object_get(tiers, "redis"), "misses");
}

/* Reads GET /api/v1/monitoring/cache/stats into *s; 0 or -1. */
static int read_stats(worker_t *w, stats_snap_t *s)
{
    json_t *j, *kss, *o;
    const char *name;
    memset(s, 0, sizeof(*s));
    if (http(w, "/api/v1/monitoring/cache/stats", NULL, NULL) != 200) {
        return -1;
    }
    j = json_loadb(w->body, w->body_len, 0, NULL);
    kss = j != NULL ? json_object_get(j, "keyspaces") : NULL;
    if (!json_is_object(kss)) {
        json_decref(j);
        return -1;
    }
    json_object_foreach(kss, name, o)
    {
        if (s->n == MAX_KEYSPACES) {
            break;
        }
        read_ks(o, name, &s->ks[s->n++]);
    }
    read_ks(json_object_get(j, "totals"), "totals", &s->all);
    json_decref(j);
    return 0;
}

/* z = x - y, counter by counter (0 where a counter went back). */
static void ks_sub(const ks_snap_t *x, const ks_snap_t *y, ks_snap_t *z)
{
    *z = *x;
#define SUB(f) z->f = x->f >= y->f ? x->f - y->f : 0
    SUB(hits);
    SUB(misses);
    SUB(loads);
    SUB(bypasses);
    SUB(stale_served);
    SUB(near_hits);
    SUB(near_misses);
    SUB(redis_hits);
    SUB(redis_misses);
    SUB(invalidations);
    SUB(sets);
    SUB(set_errors);
    SUB(flight_joins);
    SUB(refills);
    SUB(refill_hits);
    SUB(refill_skipped_cold);
    SUB(refill_skipped_rate);
    SUB(refill_skipped_overflow);
    SUB(refill_skipped_breaker);
    SUB(refill_raced);
    SUB(refill_wait_timeouts);
#undef SUB
}

static void stats_delta(const stats_snap_t *a, const stats_snap_t *b,
                        stats_snap_t *d)
{
    memset(d, 0, sizeof(*d));
    for (size_t i = 0; i < b->n; i++) {
        const ks_snap_t *x = &b->ks[i], *y = NULL;
        ks_snap_t *z = &d->ks[d->n++];
        for (size_t k = 0; k < a->n; k++) {
            if (strcmp(a->ks[k].name, x->name) == 0) {
                y = &a->ks[k];
            }
        }
        if (y != NULL) {
            ks_sub(x, y, z);
        } else {
            *z = *x;
        }
    }
    ks_sub(&b->all, &a->all, &d->all);
}

static const ks_snap_t *find_ks(const stats_snap_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->ks[i].name, name) == 0) {
            return &s->ks[i];
        }
    }
    return NULL;
}

static double ratio(double a, double b)
{
    return b > 0.0 ? a / b : 0.0;
}

/* ---- processes ------------------------------------------------------------
 */

/*
 * Runs the service binary once (seed, keys create) with DATABASE_URL=url
 * and its stdout to out (cap bytes, NUL-terminated; may be NULL). Waits at
 * most timeout_s. Returns its exit status, or -1.
 */
static int run_tool(const char *bin, const char *url, char *const *args,
                    char *out, size_t cap, int timeout_s, const char *log)
{
    int fds[2];
    size_t got = 0;
    int status = 0;
    char *argv[16];
    size_t n = 0;
    pid_t pid;

    argv[n++] = (char *)bin;
    for (size_t i = 0; args[i] != NULL && n < 15; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    if (pipe(fds) != 0) {
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        FILE *lf = fopen(log, "a");
        dup2(fds[1], 1);
        if (lf != NULL) {
            dup2(fileno(lf), 2);
        }
        close(fds[0]);
        setenv("DATABASE_URL", url, 1);
        setenv("UTXOIQ_ALLOW_ROOT", "1", 1);
        unsetenv("REDIS_URL");
        unsetenv("REDIS_HOST");
        execv(bin, argv);
        _exit(127);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    uint64_t deadline = uc_test_now_ms() + (uint64_t)timeout_s * 1000;
    for (;;) {
        char buf[256];
        struct timeval tv = {0, 100000};
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(fds[0], &rs);
        if (select(fds[0] + 1, &rs, NULL, NULL, &tv) > 0) {
            ssize_t k = read(fds[0], buf, sizeof(buf));
            if (k <= 0) {
                break;
            }
            if (out != NULL && got + (size_t)k < cap) {
                memcpy(out + got, buf, (size_t)k);
                got += (size_t)k;
            }
        }
        if (uc_test_now_ms() > deadline) {
            kill(pid, SIGKILL);
            break;
        }
    }
    close(fds[0]);
    for (;;) {
        pid_t wp = waitpid(pid, &status, WNOHANG);
        if (wp == pid) {
            break;
        }
        if (uc_test_now_ms() > deadline + 5000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        uc_test_sleep_ms(20);
    }
    if (out != NULL) {
        out[got] = '\0';
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = NULL;
    char buf[65536];
    size_t k;
    int rc = -1;
    if (a == NULL) {
        return errno == ENOENT ? 0 : -1;
    }
    b = fopen(to, "wb");
    if (b == NULL) {
        goto done;
    }
    while ((k = fread(buf, 1, sizeof(buf), a)) > 0) {
        if (fwrite(buf, 1, k, b) != k) {
            goto done;
        }
    }
    rc = ferror(a) ? -1 : 0;
done:
    fclose(a);
    if (b != NULL && fclose(b) != 0) {
        rc = -1;
    }
    return rc;
}

/* ---- the database ------------------------------------------------------- */

typedef struct {
    int pg;
    char dir[512];
    char seed_url[1024];
    char seed_file[600];
    uc_test_pg_t pgs;
    int pgss; /* pg_stat_statements available */
} db_t;

static void pg_url_for(const db_t *d, const char *dbname, char *url, size_t cap)
{
    snprintf(url, cap, "postgresql://%s:%s@127.0.0.1:%d/%s", d->pgs.user,
             d->pgs.password, d->pgs.port, dbname);
}

static int db_setup(db_t *d, const opts_t *o)
{
    d->pg = o->pg;
    if (!d->pg) {
        snprintf(d->seed_file, sizeof(d->seed_file), "%s/seed.db", d->dir);
        snprintf(d->seed_url, sizeof(d->seed_url), "sqlite://%s", d->seed_file);
        return 0;
    }
    if (uc_test_pg_start(&d->pgs) != 0) {
        fprintf(stderr, "simulate: cannot start PostgreSQL\n");
        return -1;
    }
    char sql[256];
    snprintf(sql, sizeof(sql), "CREATE DATABASE sim_seed OWNER %s",
             d->pgs.user);
    if (uc_test_pg_psql(&d->pgs, sql, NULL, 0) != 0) {
        fprintf(stderr, "simulate: CREATE DATABASE failed\n");
        return -1;
    }
    /*
     * Statement counts: pg_stat_statements, which must be preloaded, so
     * the server restarts once. Its own settings exist only once the
     * library is loaded (before, ALTER SYSTEM rejects them as unknown), so
     * track_utility is set after the restart and applied by a reload. The
     * extension's view lives in the maintenance database psql uses and
     * shows every database's statements. Without it the figures are left
     * out and the estimate stands alone.
     */
    if (uc_test_pg_psql(&d->pgs,
                        "ALTER SYSTEM SET shared_preload_libraries = "
                        "'pg_stat_statements'",
                        NULL, 0) == 0 &&
        uc_test_pg_down(&d->pgs) == 0 && uc_test_pg_up(&d->pgs) == 0 &&
        uc_test_pg_psql(&d->pgs, "CREATE EXTENSION pg_stat_statements", NULL,
                        0) == 0 &&
        uc_test_pg_psql(&d->pgs,
                        "ALTER SYSTEM SET pg_stat_statements.track_utility "
                        "= off",
                        NULL, 0) == 0 &&
        uc_test_pg_psql(&d->pgs, "SELECT pg_reload_conf()", NULL, 0) == 0) {
        d->pgss = 1;
    } else if (!d->pgs.running && uc_test_pg_up(&d->pgs) != 0) {
        return -1;
    }
    if (!d->pgss) {
        fprintf(stderr, "simulate: pg_stat_statements unavailable: no "
                        "PostgreSQL statement counts\n");
    }
    pg_url_for(d, "sim_seed", d->seed_url, sizeof(d->seed_url));
    return 0;
}

/*
 * PostgreSQL: ANALYZE the seeded database, so that every mode's copy
 * (CREATE DATABASE ... TEMPLATE copies pg_statistic too) starts with the
 * planner statistics of its 250 000 feedback rows. Without them a copy
 * taken before autovacuum reached the seed plans an insight's comment page
 * as a walk of the whole table in updated_at order (0.1 to 0.7 s a
 * query), and the mode measures that instead of the cache. Returns 0 or
 * -1; nothing to do on SQLite.
 */
static int db_analyze(const db_t *d)
{
    PGconn *c;
    int ok = 0;
    if (!d->pg) {
        return 0;
    }
    c = PQconnectdb(d->seed_url);
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *res = PQexec(c, "ANALYZE");
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

/* A fresh copy of the seeded database for one mode, its URL in url. */
static int db_copy(db_t *d, int mode, char *url, size_t cap)
{
    if (!d->pg) {
        char to[700], from[700];
        snprintf(to, sizeof(to), "%s/%s.db", d->dir, MODE_ID[mode]);
        for (int k = 0; k < 3; k++) {
            static const char *const sfx[] = {"", "-wal", "-shm"};
            char a[700], b[700];
            snprintf(a, sizeof(a), "%s%s", d->seed_file, sfx[k]);
            snprintf(b, sizeof(b), "%s%s", to, sfx[k]);
            if (copy_file(a, b) != 0) {
                return -1;
            }
        }
        (void)from;
        snprintf(url, cap, "sqlite://%s", to);
        return 0;
    }
    char sql[256], name[64];
    snprintf(name, sizeof(name), "sim_%s", MODE_ID[mode]);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", name);
    (void)uc_test_pg_psql(&d->pgs, sql, NULL, 0);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE sim_seed OWNER %s",
             name, d->pgs.user);
    if (uc_test_pg_psql(&d->pgs, sql, NULL, 0) != 0) {
        return -1;
    }
    pg_url_for(d, name, url, cap);
    return 0;
}

/* The text the service's statistics query starts with (src/server/db/pg.c,
 * cut before its first constant, which pg_stat_statements shows as $n),
 * to pick its calls out of pg_stat_statements. */
#define PG_STATS_QUERY "SELECT count(rating), coalesce(avg(rating), "

/* Statements PostgreSQL ran in the mode's database so far, those whose
 * text starts with prefix when prefix != NULL; -1 when not measured. */
static long long pg_statements(db_t *d, int mode, const char *prefix)
{
    char sql[400], out[64];
    if (!d->pg || !d->pgss) {
        return -1;
    }
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
             "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
             "'sim_%s')%s%s%s",
             MODE_ID[mode], prefix != NULL ? " AND starts_with(query, '" : "",
             prefix != NULL ? prefix : "", prefix != NULL ? "')" : "");
    if (uc_test_pg_psql(&d->pgs, sql, out, sizeof(out)) != 0) {
        return -1;
    }
    return strtoll(out, NULL, 10);
}

/*
 * The checker's own proof that it can fail: ratings written straight into
 * the mode's database, behind the service's back (no invalidation), by
 * users the service never saw; the simulator counts them as acknowledged.
 * Returns 0 or -1.
 */
static int write_behind(const db_t *d, const char *url, const char *ins, int k)
{
    char sql[400];
    if (!d->pg) {
        sqlite3 *db = NULL;
        int rc;
        snprintf(sql, sizeof(sql),
                 "INSERT INTO insight_feedback (insight_id, user_id, rating,"
                 " created_at, updated_at) VALUES ('%s', 'behind-%d', 5, 0, "
                 "0)",
                 ins, k);
        if (sqlite3_open(url + strlen("sqlite://"), &db) != SQLITE_OK) {
            sqlite3_close(db);
            return -1;
        }
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_close(db);
        return rc == SQLITE_OK ? 0 : -1;
    }
    snprintf(sql, sizeof(sql),
             "INSERT INTO insight_feedback (insight_id, user_id, rating,"
             " created_at, updated_at) VALUES ('%s', 'behind-%d', 5, now(), "
             "now())",
             ins, k);
    PGconn *c = PQconnectdb(url);
    int ok = 0;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *res = PQexec(c, sql);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

/* ---- setup: seed, keys, jobs -------------------------------------------- */

typedef struct {
    const opts_t *o;
    db_t db;
    char log[600];
    char admin_key[80], svc_key[80];
    char (*user_keys)[80];
    job_t jobs[MAX_JOBS];
    size_t njobs;
} setup_t;

static int create_key(setup_t *s, const char *user, const char *role, char *key,
                      size_t cap)
{
    char out[256];
    char *args[] = {(char *)"keys",
                    (char *)"create",
                    (char *)"--user",
                    (char *)user,
                    (char *)"--role",
                    (char *)role,
                    NULL};
    if (run_tool(s->o->api_bin, s->db.seed_url, args, out, sizeof(out), 30,
                 s->log) != 0) {
        fprintf(stderr, "simulate: keys create --user %s failed (see %s)\n",
                user, s->log);
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    if (strncmp(out, "uiq_", 4) != 0 || strlen(out) >= cap) {
        fprintf(stderr, "simulate: unexpected key output\n");
        return -1;
    }
    snprintf(key, cap, "%s", out);
    return 0;
}

/* Reads the job list into s->jobs (through a setup worker). */
static int read_jobs(worker_t *w, setup_t *s)
{
    json_t *j, *arr, *it;
    size_t i;
    if (http(w, "/api/v1/monitoring/backfill/status?limit=100", NULL, NULL) !=
        200) {
        return -1;
    }
    j = json_loadb(w->body, w->body_len, 0, NULL);
    /* A bare list of jobs, as the original answered. */
    arr = json_is_array(j) ? j : NULL;
    s->njobs = 0;
    json_array_foreach(arr, i, it)
    {
        job_t *jb;
        const char *id = json_string_value(json_object_get(it, "id"));
        if (id == NULL || s->njobs == MAX_JOBS) {
            continue;
        }
        jb = &s->jobs[s->njobs++];
        snprintf(jb->id, sizeof(jb->id), "%s", id);
        jb->start_block = (long)jint(it, "start_block");
        jb->end_block = (long)jint(it, "end_block");
        atomic_init(&jb->progress, 0);
    }
    json_decref(j);
    return s->njobs > 0 ? 0 : -1;
}

static int worker_init(worker_t *w, run_t *r, int index)
{
    memset(w, 0, sizeof(*w));
    w->r = r;
    w->index = index;
    w->rng = UINT64_C(0x9e3779b97f4a7c15) ^ ((uint64_t)(index + 1) << 32) ^
             (uint64_t)r->mode;
    w->body = malloc(BODY_CAP);
    w->c = curl_new(w);
    return w->body != NULL && w->c != NULL ? 0 : -1;
}

static void worker_release(worker_t *w)
{
    if (w->c != NULL) {
        curl_easy_cleanup(w->c);
    }
    free(w->body);
    for (int e = 0; e < EP_COUNT; e++) {
        free(w->lat[e].v);
    }
    free(w->hit_lat.v);
    free(w->raw_lat.v);
    free(w->rawl_lat.v);
    memset(w, 0, sizeof(*w));
}

static struct curl_slist *hdr_list(const char *key, int post)
{
    char auth[128];
    struct curl_slist *h = NULL;
    if (key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    if (post) {
        h = curl_slist_append(h, "Content-Type: application/json");
        h = curl_slist_append(h, "Expect:");
    }
    return h;
}

static int setup(setup_t *s)
{
    char out[512];
    char num[24];
    char *seed_args[] = {(char *)"seed", (char *)"--insights", num, NULL};
    double t = now_s();
    uc_test_api_t api;
    run_t r;
    worker_t w;
    int rc = -1;

    snprintf(s->log, sizeof(s->log), "%s/setup.log", s->db.dir);
    if (db_setup(&s->db, s->o) != 0) {
        return -1;
    }
    snprintf(num, sizeof(num), "%ld", s->o->insights);
    printf("seeding %ld insights (%s) ...\n", s->o->insights,
           s->o->pg ? "postgresql" : "sqlite");
    fflush(stdout);
    if (run_tool(s->o->api_bin, s->db.seed_url, seed_args, out, sizeof(out),
                 1800, s->log) != 0) {
        fprintf(stderr, "simulate: seed failed (see %s)\n", s->log);
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    printf("  %s  (%.1f s)\n", out, now_s() - t);
    if (create_key(s, "sim-admin", "admin", s->admin_key,
                   sizeof(s->admin_key)) != 0 ||
        create_key(s, "sim-ingest", "service", s->svc_key,
                   sizeof(s->svc_key)) != 0) {
        return -1;
    }
    for (long u = 0; u < s->o->users; u++) {
        char name[32];
        snprintf(name, sizeof(name), "sim-user-%04ld", u);
        if (create_key(s, name, "user", s->user_keys[u],
                       sizeof(s->user_keys[u])) != 0) {
            return -1;
        }
    }
    /* More backfill jobs than the seed's six, created through the API by
     * a service of its own on the seed database (memory cache). */
    const char *env[] = {"UTXOIQ_LOG_LEVEL=warn", NULL};
    if (uc_test_api_start(&api, s->db.seed_url, env) != 0) {
        return -1;
    }
    memset(&r, 0, sizeof(r));
    r.port = api.port;
    if (worker_init(&w, &r, 0) != 0) {
        goto done;
    }
    struct curl_slist *h = hdr_list(s->admin_key, 1);
    for (int i = 0; i < EXTRA_JOBS; i++) {
        char body[200];
        snprintf(body, sizeof(body),
                 "{\"job_type\":\"%s\",\"start_block\":%d,\"end_block\":%d}",
                 i % 2 == 0 ? "blocks" : "insights", 700000 + i * 5000,
                 705000 + i * 5000);
        if (http(&w, "/api/v1/monitoring/backfill/start", h, body) != 200) {
            fprintf(stderr, "simulate: backfill/start: %.200s\n", w.body);
            curl_slist_free_all(h);
            goto done;
        }
    }
    curl_slist_free_all(h);
    rc = read_jobs(&w, s);
done:
    worker_release(&w);
    if (uc_test_api_stop(&api) != 0) {
        rc = -1;
    }
    uc_test_api_destroy(&api);
    if (rc == 0 && db_analyze(&s->db) != 0) {
        fprintf(stderr, "simulate: ANALYZE of the seeded database failed\n");
        rc = -1;
    }
    printf("  %ld user keys, %zu backfill jobs  (setup %.1f s)\n", s->o->users,
           s->njobs, now_s() - t);
    return rc;
}

/* ---- one mode ------------------------------------------------------------ */

typedef struct {
    run_t *r;
    worker_t w;
    mode_result_t *res;
} monitor_t;

/*
 * Four times a second, from the warm-up to the end of the window: the
 * library's own top --hot of feedback_stats (GET /api/v1/monitoring/cache/
 * hot, admin), as a bitmap over the insights. The library refills what its
 * record ranks there, so this is what "a hot insight" means to it; the
 * Zipf rank is the mix's truth, which the record learns only from the
 * reads it has seen.
 */
typedef struct {
    run_t *r;
    worker_t w;
    struct curl_slist *hdr;
    unsigned char *next;
} hot_watch_t;

static void *hot_watch_main(void *arg)
{
    hot_watch_t *hw = arg;
    run_t *r = hw->r;
    char path[160];
    snprintf(path, sizeof(path),
             "/api/v1/monitoring/cache/hot?keyspace=feedback_stats&limit=%ld",
             r->o->hot);
    while (!atomic_load(&r->hot_stop) && !interrupted) {
        json_t *j = NULL, *top = NULL;
        if (http(&hw->w, path, hw->hdr, NULL) == 200 && !hw->w.body_over) {
            j = json_loadb(hw->w.body, hw->w.body_len, 0, NULL);
            top = j != NULL ? json_object_get(j, "top") : NULL;
        }
        if (!json_is_array(top)) {
            atomic_fetch_add(&r->hot_failures, 1);
        } else {
            size_t i;
            json_t *e;
            uint64_t now = uc_bench_now_ns();
            memset(hw->next, 0, (size_t)r->n);
            json_array_foreach(top, i, e)
            {
                const char *k = json_string_value(json_object_get(e, "key"));
                long id;
                if (k != NULL &&
                    sscanf(k, "feedback:stats:insight-%ld", &id) == 1 &&
                    id >= 1 && id <= r->n) {
                    hw->next[id - 1] = 1;
                }
            }
            for (long x = 0; x < r->n; x++) {
                if (!hw->next[x]) {
                    atomic_store(&r->hot_since[x], 0);
                } else if (atomic_load(&r->hot_since[x]) == 0) {
                    atomic_store(&r->hot_since[x], now);
                }
            }
            atomic_fetch_add(&r->hot_readings, 1);
        }
        json_decref(j);
        uc_test_sleep_ms(250);
    }
    return NULL;
}

/* Once a second during the measured window: feedback_stats' hit rate. */
static void *monitor_main(void *arg)
{
    monitor_t *m = arg;
    stats_snap_t prev, cur;
    int have = read_stats(&m->w, &prev) == 0;
    while (!atomic_load(&m->r->stop) && !interrupted) {
        uc_test_sleep_ms(1000);
        if (!atomic_load(&m->r->measuring) || read_stats(&m->w, &cur) != 0) {
            continue;
        }
        if (have && m->res->nseries < MAX_SECONDS) {
            const ks_snap_t *a = find_ks(&prev, "feedback_stats");
            const ks_snap_t *b = find_ks(&cur, "feedback_stats");
            double rate = 0.0;
            if (a != NULL && b != NULL) {
                double h = (double)(b->hits - a->hits);
                double mi = (double)(b->misses - a->misses);
                rate = ratio(h, h + mi);
            }
            m->res->fs_hit_series[m->res->nseries++] = rate;
        }
        prev = cur;
        have = 1;
    }
    return NULL;
}

/* Reads every insight's statistics once, so that the measured window sees
 * a cache in its steady state rather than one filling from empty. */
typedef struct {
    run_t *r;
    worker_t *w;
    long from, to;
} prefill_t;

static void *prefill_main(void *arg)
{
    prefill_t *p = arg;
    for (long i = p->from; i < p->to && !interrupted; i++) {
        char path[128], ins[32];
        insight_name(i, ins, sizeof(ins));
        snprintf(path, sizeof(path), "/api/v1/feedback/stats?insight_id=%s",
                 ins);
        if (http(p->w, path, NULL, NULL) == 200) {
            atomic_fetch_or(&p->r->seen[i], 1);
        }
    }
    return NULL;
}

static int run_phase(run_t *r, worker_t *ws, double seconds)
{
    pthread_t th[256];
    long n = r->o->threads;
    atomic_store(&r->stop, 0);
    for (long i = 0; i < n; i++) {
        if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
            atomic_store(&r->stop, 1);
            for (long k = 0; k < i; k++) {
                pthread_join(th[k], NULL);
            }
            return -1;
        }
    }
    uint64_t end = uc_bench_now_ns() + (uint64_t)(seconds * 1e9);
    while (uc_bench_now_ns() < end && !interrupted) {
        uc_test_sleep_ms(50);
    }
    atomic_store(&r->measuring, 0);
    atomic_store(&r->stop, 1);
    for (long i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
    }
    return interrupted ? -1 : 0;
}

static int run_mode(setup_t *s, int mode, const double *cdf,
                    const uint32_t *perm, const uint32_t *rank_of,
                    double *job_cdf, struct curl_slist **uh,
                    struct curl_slist **uhp, struct curl_slist *svh,
                    mode_result_t *res)
{
    const opts_t *o = s->o;
    uc_test_redis_t redis;
    uc_test_api_t api;
    char url[1100], redis_env[128], near_env[64];
    const char *env[6 + SVC_ENV_MAX];
    run_t *r = calloc(1, sizeof(*r));
    worker_t *ws = calloc((size_t)o->threads, sizeof(*ws));
    monitor_t mon;
    hot_watch_t hw;
    pthread_t mth, hth;
    int mon_started = 0, hw_started = 0, rc = -1, redis_up = 0, api_up = 0;
    stats_snap_t before, after;
    long long pg0 = -1, pg1 = -1, pgq0 = -1, pgq1 = -1;
    size_t nbytes = ((size_t)o->insights * (size_t)o->users + 7) / 8;

    memset(&redis, 0, sizeof(redis));
    memset(&api, 0, sizeof(api));
    memset(&mon, 0, sizeof(mon));
    memset(&hw, 0, sizeof(hw));
    memset(res, 0, sizeof(*res));
    res->pg_statements = -1;
    res->pg_fs_queries = -1;
    res->injected = -1;
    if (r == NULL || ws == NULL) {
        goto done;
    }
    r->ins = calloc((size_t)o->insights, sizeof(*r->ins));
    r->rated = calloc(nbytes, 1);
    r->fb_acked = calloc((size_t)o->insights, sizeof(*r->fb_acked));
    r->fb_claimed = calloc((size_t)o->insights, sizeof(*r->fb_claimed));
    r->fb_inflight = calloc((size_t)o->insights, sizeof(*r->fb_inflight));
    r->seen = calloc((size_t)o->insights, sizeof(*r->seen));
    if (r->ins == NULL || r->rated == NULL || r->fb_acked == NULL ||
        r->fb_claimed == NULL || r->fb_inflight == NULL || r->seen == NULL) {
        goto done;
    }
    r->rank_of = rank_of;
    r->o = o;
    r->mode = mode;
    r->n = o->insights;
    r->zipf_cdf = cdf;
    r->perm = perm;
    r->user_keys = s->user_keys;
    r->user_hdr = uh;
    r->user_hdr_post = uhp;
    r->svc_hdr_post = svh;
    r->jobs = s->jobs;
    r->njobs = s->njobs;
    r->job_cdf = job_cdf;
    pthread_mutex_init(&r->vmu, NULL);

    printf("\n== mode: %s ==\n", MODE_NAME[mode]);
    fflush(stdout);
    if (db_copy(&s->db, mode, url, sizeof(url)) != 0) {
        fprintf(stderr, "simulate: cannot copy the seeded database\n");
        goto done;
    }
    /*
     * No cache: the service has no switch that turns its cache off, so it
     * gets a Redis that refuses every write (maxmemory of one byte,
     * noeviction). The library cannot record its dataset marker, trusts no
     * dataset and bypasses the cache on every read: the database answers
     * all of them, and nothing is stored.
     */
    if (uc_test_redis_start(&redis,
                            mode == MODE_NOCACHE
                                ? "maxmemory 1\nmaxmemory-policy noeviction\n"
                                : NULL) != 0) {
        goto done;
    }
    redis_up = 1;
    snprintf(redis_env, sizeof(redis_env), "REDIS_URL=redis://127.0.0.1:%d",
             redis.port);
    snprintf(near_env, sizeof(near_env), "UTXOCACHE_NEAR=%s",
             mode == MODE_NEAR ? "on" : "off");
    env[0] = redis_env;
    env[1] = near_env;
    env[2] = "UTXOIQ_LOG_LEVEL=warn";
    /* Refills are said either way, so that a run does not depend on the
     * library's default (on, the top 1000). */
    env[3] =
        o->refill_off ? "UTXOCACHE_REFILL_TOP=0" : "UTXOCACHE_REFILL_TOP=1000";
    for (size_t i = 0; i < o->nsvc_env; i++) {
        env[4 + i] = o->svc_env[i];
    }
    env[4 + o->nsvc_env] = NULL;
    if (uc_test_api_start(&api, url, env) != 0) {
        goto done;
    }
    api_up = 1;
    r->port = api.port;
    for (long i = 0; i < o->threads; i++) {
        if (worker_init(&ws[i], r, (int)i) != 0) {
            goto done;
        }
    }
    if (o->prefill) {
        pthread_t th[256];
        prefill_t pf[256];
        double t = now_s();
        for (long i = 0; i < o->threads; i++) {
            pf[i].r = r;
            pf[i].w = &ws[i];
            pf[i].from = o->insights * i / o->threads;
            pf[i].to = o->insights * (i + 1) / o->threads;
            pthread_create(&th[i], NULL, prefill_main, &pf[i]);
        }
        for (long i = 0; i < o->threads; i++) {
            pthread_join(th[i], NULL);
        }
        printf("  prefill: %ld insights read once (%.1f s)\n", o->insights,
               now_s() - t);
    }
    if (mode != MODE_NOCACHE) {
        r->hot_since = calloc((size_t)o->insights, sizeof(*r->hot_since));
        r->fb_hot_since = calloc((size_t)o->insights, sizeof(*r->fb_hot_since));
        r->fb_write_ns = calloc((size_t)o->insights, sizeof(*r->fb_write_ns));
        hw.next = malloc((size_t)o->insights);
        hw.r = r;
        hw.hdr = hdr_list(s->admin_key, 0);
        if (r->hot_since == NULL || r->fb_hot_since == NULL ||
            r->fb_write_ns == NULL || hw.next == NULL || hw.hdr == NULL ||
            worker_init(&hw.w, r, 2000) != 0 ||
            pthread_create(&hth, NULL, hot_watch_main, &hw) != 0) {
            fprintf(stderr, "simulate: cannot watch the library's record\n");
            goto done;
        }
        hw_started = 1;
    }
    if (o->warmup_s > 0) {
        printf("  warm-up: %ld s of the mix, not measured\n", o->warmup_s);
        fflush(stdout);
        if (run_phase(r, ws, (double)o->warmup_s) != 0) {
            goto done;
        }
    }
    mon.r = r;
    mon.res = res;
    if (worker_init(&mon.w, r, 1000) != 0 || read_stats(&mon.w, &before)) {
        fprintf(stderr, "simulate: cache stats unreadable\n");
        goto done;
    }
    pg0 = pg_statements(&s->db, mode, NULL);
    pgq0 = pg_statements(&s->db, mode, PG_STATS_QUERY);
    atomic_store(&r->distinct, 0);
    atomic_store(&r->cold, 0);
    printf("  measuring: %ld s, %ld threads\n", o->duration_s, o->threads);
    fflush(stdout);
    r->t0_ns = uc_bench_now_ns();
    atomic_store(&r->measuring, 1);
    atomic_store(&r->stop, 0);
    if (pthread_create(&mth, NULL, monitor_main, &mon) == 0) {
        mon_started = 1;
    }
    double t0 = now_s();
    int prc = run_phase(r, ws, (double)o->duration_s);
    res->seconds = now_s() - t0;
    if (mon_started) {
        pthread_join(mth, NULL);
    }
    if (hw_started) {
        atomic_store(&r->hot_stop, 1);
        pthread_join(hth, NULL);
        hw_started = 0;
        res->hot_readings = atomic_load(&r->hot_readings);
        res->hot_failures = atomic_load(&r->hot_failures);
    }
    if (prc != 0 || read_stats(&mon.w, &after) != 0) {
        goto done;
    }
    pg1 = pg_statements(&s->db, mode, NULL);
    pgq1 = pg_statements(&s->db, mode, PG_STATS_QUERY);
    stats_delta(&before, &after, &res->delta);

    /* Merge the workers' figures. */
    samples_t all[EP_COUNT];
    samples_t hit_all, raw_all, rawl_all;
    memset(all, 0, sizeof(all));
    memset(&hit_all, 0, sizeof(hit_all));
    memset(&raw_all, 0, sizeof(raw_all));
    memset(&rawl_all, 0, sizeof(rawl_all));
    for (long i = 0; i < o->threads; i++) {
        for (size_t k = 0; k < ws[i].hit_lat.n; k++) {
            (void)samples_push(&hit_all, ws[i].hit_lat.v[k]);
        }
        for (size_t k = 0; k < ws[i].raw_lat.n; k++) {
            (void)samples_push(&raw_all, ws[i].raw_lat.v[k]);
        }
        for (size_t k = 0; k < ws[i].rawl_lat.n; k++) {
            (void)samples_push(&rawl_all, ws[i].rawl_lat.v[k]);
        }
        for (int x = 0; x < XC_COUNT; x++) {
            res->raw_xc[x] += ws[i].raw_xc[x];
            res->rawl_xc[x] += ws[i].rawl_xc[x];
        }
        res->rawl_overlapped += ws[i].rawl_overlapped;
        for (int e = 0; e < EP_COUNT; e++) {
            res->count[e] += ws[i].count[e];
            res->errors[e] += ws[i].errors[e];
            for (int x = 0; x < XC_COUNT; x++) {
                res->xc[e][x] += ws[i].xc[e][x];
            }
            for (size_t k = 0; k < ws[i].lat[e].n; k++) {
                (void)samples_push(&all[e], ws[i].lat[e].v[k]);
                if (e == EP_STATS || e == EP_STATS_PATH) {
                    (void)samples_push(&res->stats_lat, ws[i].lat[e].v[k]);
                }
            }
        }
        for (int k = 0; k < MAX_SECONDS; k++) {
            res->per_s[k] += ws[i].per_s[k];
        }
        if (ws[i].first_error_status != 0 && ws[i].first_error[0] != '\0') {
            fprintf(stderr, "  first error (thread %ld): %s\n", i,
                    ws[i].first_error);
        }
    }
    for (int e = 0; e < EP_COUNT; e++) {
        if (all[e].n > 0) {
            qsort(all[e].v, all[e].n, sizeof(uint32_t), cmp_u32);
        }
        res->p50[e] = quantile(&all[e], 0.50);
        res->p99[e] = quantile(&all[e], 0.99);
        free(all[e].v);
        if (EPS[e].write) {
            res->writes += res->count[e] - res->errors[e];
        } else {
            res->reads += res->count[e] - res->errors[e];
            res->uncached_reads += res->xc[e][XC_NONE];
        }
    }
    /* qsort wants an array even for no samples. */
    if (res->stats_lat.n > 0) {
        qsort(res->stats_lat.v, res->stats_lat.n, sizeof(uint32_t), cmp_u32);
    }
    if (hit_all.n > 0) {
        qsort(hit_all.v, hit_all.n, sizeof(uint32_t), cmp_u32);
    }
    if (raw_all.n > 0) {
        qsort(raw_all.v, raw_all.n, sizeof(uint32_t), cmp_u32);
    }
    res->hit_p99 = quantile(&hit_all, 0.99);
    res->raw_p50 = quantile(&raw_all, 0.50);
    res->raw_p99 = quantile(&raw_all, 0.99);
    res->raw_n = raw_all.n;
    if (rawl_all.n > 0) {
        qsort(rawl_all.v, rawl_all.n, sizeof(uint32_t), cmp_u32);
    }
    res->rawl_p50 = quantile(&rawl_all, 0.50);
    res->rawl_p99 = quantile(&rawl_all, 0.99);
    res->rawl_n = rawl_all.n;
    free(hit_all.v);
    free(raw_all.v);
    free(rawl_all.v);
    for (int e = EP_STATS; e <= EP_STATS_PATH; e++) {
        res->fs_reads += res->count[e] - res->errors[e];
        res->fs_hits += res->xc[e][XC_HIT];
    }
    for (int e = EP_RATE; e <= EP_FLAG; e++) {
        res->fb_writes += res->count[e] - res->errors[e];
    }
    res->distinct = atomic_load(&r->distinct);
    res->cold = atomic_load(&r->cold);
    if (pgq0 >= 0 && pgq1 >= pgq0) {
        res->pg_fs_queries = pgq1 - pgq0;
    }
    for (size_t k = 0; k < res->delta.n; k++) {
        res->loads += res->delta.ks[k].loads;
    }
    res->db_queries = (double)(res->loads + res->uncached_reads + res->writes);
    if (pg0 >= 0 && pg1 >= pg0) {
        res->pg_statements = pg1 - pg0;
    }

    /* The checker proves it can fail: ratings written behind the
     * service's back on the most read insights, then read through it. */
    if (o->inject > 0) {
        long done_n = 0;
        atomic_store(&r->injecting, 1);
        for (long k = 0; k < o->inject && k < o->insights; k++) {
            long idx = (long)perm[k];
            char ins[32], path[128];
            insight_name(idx, ins, sizeof(ins));
            atomic_fetch_add(&r->ins[idx].started, 1);
            if (write_behind(&s->db, url, ins, (int)k) != 0) {
                atomic_store(&r->ins[idx].poisoned, 1);
                continue;
            }
            atomic_fetch_add(&r->ins[idx].acked, 1);
            done_n++;
            snprintf(path, sizeof(path), "/api/v1/feedback/stats?insight_id=%s",
                     ins);
            int acked = atomic_load(&r->ins[idx].acked);
            if (http(&ws[0], path, NULL, NULL) == 200) {
                check_stats(r, idx, acked, &ws[0]);
            }
        }
        res->injected = done_n;
        res->injected_flagged = (long)atomic_load(&r->injected_flagged);
    }
    res->checked = atomic_load(&r->checked);
    res->informative = atomic_load(&r->informative);
    res->violations = atomic_load(&r->violations);
    res->nshown = r->nshown;
    memcpy(res->shown, r->shown, sizeof(res->shown));
    res->ran = 1;
    rc = 0;
done:
    if (hw_started) {
        atomic_store(&r->hot_stop, 1);
        pthread_join(hth, NULL);
    }
    if (hw.w.c != NULL || hw.w.body != NULL) {
        worker_release(&hw.w);
    }
    curl_slist_free_all(hw.hdr);
    free(hw.next);
    if (ws != NULL) {
        for (long i = 0; i < o->threads; i++) {
            worker_release(&ws[i]);
        }
    }
    if (mon.w.c != NULL || mon.w.body != NULL) {
        worker_release(&mon.w);
    }
    if (api_up && uc_test_api_stop(&api) != 0) {
        fprintf(stderr, "simulate: the service did not stop cleanly (%s)\n",
                api.log);
    }
    if (!o->keep) {
        uc_test_api_destroy(&api);
    }
    if (redis_up) {
        uc_test_redis_stop(&redis);
    }
    if (r != NULL) {
        free(r->ins);
        free(r->rated);
        free(r->fb_acked);
        free(r->fb_claimed);
        free(r->fb_inflight);
        free(r->seen);
        free(r->hot_since);
        free(r->fb_hot_since);
        free(r->fb_write_ns);
        pthread_mutex_destroy(&r->vmu);
    }
    free(r);
    free(ws);
    return rc;
}

/* ---- figures --------------------------------------------------------------
 */

static uint64_t ks_reads(const ks_snap_t *k)
{
    return k->hits + k->misses + k->bypasses;
}

/* Loads per read of a keyspace, 0 when it had no reads. */
static double ks_load_ratio(const ks_snap_t *k)
{
    return ratio((double)k->loads, (double)ks_reads(k));
}

static uint64_t total_requests(const mode_result_t *m)
{
    uint64_t n = 0;
    for (int e = 0; e < EP_COUNT; e++) {
        n += m->count[e];
    }
    return n;
}

static uint64_t total_errors(const mode_result_t *m)
{
    uint64_t n = 0;
    for (int e = 0; e < EP_COUNT; e++) {
        n += m->errors[e];
    }
    return n;
}

/* 1 - (q/r in mode m) / (q/r without cache); NAN without a baseline. */
static double reduction(double q, double r, double q0, double r0)
{
    double a = ratio(q, r), b = ratio(q0, r0);
    if (b <= 0.0 || r <= 0.0) {
        return NAN;
    }
    return 1.0 - a / b;
}

static double db_per_request(const mode_result_t *m)
{
    return ratio(m->db_queries, (double)total_requests(m));
}

static double fs_reduction(const mode_result_t *m, const mode_result_t *base)
{
    const ks_snap_t *a = find_ks(&m->delta, "feedback_stats");
    const ks_snap_t *b = find_ks(&base->delta, "feedback_stats");
    if (a == NULL || b == NULL || !base->ran) {
        return NAN;
    }
    return reduction((double)a->loads, (double)ks_reads(a), (double)b->loads,
                     (double)ks_reads(b));
}

static double all_reduction(const mode_result_t *m, const mode_result_t *base)
{
    if (!base->ran) {
        return NAN;
    }
    return reduction(m->db_queries, (double)total_requests(m), base->db_queries,
                     (double)total_requests(base));
}

static double fs_hit_rate(const mode_result_t *m)
{
    const ks_snap_t *k = find_ks(&m->delta, "feedback_stats");
    return k != NULL ? ratio((double)k->hits, (double)ks_reads(k)) : 0.0;
}

/* Warm on write: the statistics reads' hit rate as the clients saw it
 * (X-Cache: HIT), its bound 1 - distinct insights read / reads, and the
 * same with only the insights first read in the window (the cold ones). */
static double fs_client_hit(const mode_result_t *m)
{
    return ratio((double)m->fs_hits, (double)m->fs_reads);
}

static double fs_bound(const mode_result_t *m)
{
    return m->fs_reads > 0 ? 1.0 - (double)m->distinct / (double)m->fs_reads
                           : NAN;
}

static double fs_cold_bound(const mode_result_t *m)
{
    return m->fs_reads > 0 ? 1.0 - (double)m->cold / (double)m->fs_reads : NAN;
}

/* feedback_stats loads per acknowledged feedback write (rate, comment,
 * flag); NAN without writes. */
static double fs_loads_per_write(const mode_result_t *m)
{
    const ks_snap_t *k = find_ks(&m->delta, "feedback_stats");
    if (k == NULL || m->fb_writes == 0) {
        return NAN;
    }
    return (double)k->loads / (double)m->fb_writes;
}

static double pg_fs_per_write(const mode_result_t *m)
{
    if (m->pg_fs_queries < 0 || m->fb_writes == 0) {
        return NAN;
    }
    return (double)m->pg_fs_queries / (double)m->fb_writes;
}

static void pct(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "n/a");
    } else {
        snprintf(buf, cap, "%.2f %%", v * 100.0);
    }
}

typedef struct {
    char what[120];
    char figure[40];
    int pass;
} target_t;

static size_t targets(const mode_result_t *res, const opts_t *o, target_t *t,
                      size_t cap)
{
    size_t n = 0;
    uint64_t stale = 0;
    for (int m = MODE_REDIS; m < MODE_COUNT; m++) {
        const mode_result_t *x = &res[m];
        double v;
        if (!x->ran || n + 7 > cap) {
            continue;
        }
        v = fs_hit_rate(x);
        snprintf(t[n].what, sizeof(t[n].what),
                 "%s: feedback_stats hit rate >= 95 %%", MODE_NAME[m]);
        pct(t[n].figure, sizeof(t[n].figure), v);
        t[n++].pass = v >= 0.95;
        v = fs_reduction(x, &res[MODE_NOCACHE]);
        snprintf(t[n].what, sizeof(t[n].what),
                 "%s: feedback_stats database load reduction >= 95 %%",
                 MODE_NAME[m]);
        pct(t[n].figure, sizeof(t[n].figure), v);
        t[n++].pass = !isnan(v) && v >= 0.95;
        v = all_reduction(x, &res[MODE_NOCACHE]);
        snprintf(t[n].what, sizeof(t[n].what),
                 "%s: database load reduction, all endpoints, >= 95 %%",
                 MODE_NAME[m]);
        pct(t[n].figure, sizeof(t[n].figure), v);
        t[n++].pass = !isnan(v) && v >= 0.95;

        /* Warm on write. */
        double bound = fs_bound(x);
        v = fs_client_hit(x);
        snprintf(t[n].what, sizeof(t[n].what),
                 "%s: stats hit rate >= bound %.2f %% - 1 point", MODE_NAME[m],
                 bound * 100.0);
        pct(t[n].figure, sizeof(t[n].figure), v);
        t[n++].pass = !isnan(bound) && v >= bound - 0.01;
        v = fs_loads_per_write(x);
        snprintf(t[n].what, sizeof(t[n].what),
                 "%s: feedback_stats loads per feedback write <= 1",
                 MODE_NAME[m]);
        snprintf(t[n].figure, sizeof(t[n].figure), "%.3f", v);
        t[n++].pass = !isnan(v) && v <= 1.0;
        if (x->pg_fs_queries >= 0) {
            v = pg_fs_per_write(x);
            snprintf(t[n].what, sizeof(t[n].what),
                     "%s: stats queries (pg_stat_statements) per write <= 1",
                     MODE_NAME[m]);
            snprintf(t[n].figure, sizeof(t[n].figure), "%.3f", v);
            t[n++].pass = !isnan(v) && v <= 1.0;
        }
        /* Hot as the library ranks it when the write lands: what it
         * refills. The Zipf rank's figure is in the warm-on-write table. */
        snprintf(t[n].what, sizeof(t[n].what),
                 "%s: p99 read after write (hot) <= 1.2 x p99 hit %.3f ms",
                 MODE_NAME[m], x->hit_p99 / 1000.0);
        snprintf(t[n].figure, sizeof(t[n].figure), "%.3f ms",
                 x->rawl_p99 / 1000.0);
        t[n++].pass = x->rawl_n > 0 && x->hit_p99 > 0 &&
                      (double)x->rawl_p99 <= 1.2 * (double)x->hit_p99;
    }
    for (int m = 0; m < MODE_COUNT; m++) {
        stale += res[m].ran ? res[m].violations : 0;
    }
    if (n < cap) {
        snprintf(t[n].what, sizeof(t[n].what), "stale reads == 0 (checker)");
        snprintf(t[n].figure, sizeof(t[n].figure), "%" PRIu64, stale);
        t[n++].pass = stale == 0;
    }
    (void)o;
    return n;
}

static void print_tables(const mode_result_t *res, const opts_t *o)
{
    char a[32], b[32], c[32];
    const mode_result_t *base = &res[MODE_NOCACHE];

    printf("\n== per keyspace (measured window) ==\n");
    printf("%-11s %-22s %9s %8s %8s %8s %8s %9s %9s %7s %8s\n", "mode",
           "keyspace", "reads", "hit", "near", "redis", "loads", "ld/read",
           "reduction", "stale", "ld/write");
    for (int m = 0; m < MODE_COUNT; m++) {
        const mode_result_t *x = &res[m];
        if (!x->ran) {
            continue;
        }
        for (size_t k = 0; k < x->delta.n; k++) {
            const ks_snap_t *s = &x->delta.ks[k];
            const ks_snap_t *s0 =
                base->ran ? find_ks(&base->delta, s->name) : NULL;
            double red =
                s0 != NULL ? reduction((double)s->loads, (double)ks_reads(s),
                                       (double)s0->loads, (double)ks_reads(s0))
                           : NAN;
            pct(a, sizeof(a), ratio((double)s->hits, (double)ks_reads(s)));
            pct(b, sizeof(b),
                ratio((double)s->near_hits,
                      (double)(s->near_hits + s->near_misses)));
            pct(c, sizeof(c),
                ratio((double)s->redis_hits,
                      (double)(s->redis_hits + s->redis_misses)));
            char d[32];
            pct(d, sizeof(d), red);
            printf("%-11s %-22s %9" PRIu64 " %8s %8s %8s %8" PRIu64
                   " %9.4f %9s %7" PRIu64 " %8.3f\n",
                   MODE_NAME[m], s->name, ks_reads(s), a, b, c, s->loads,
                   ks_load_ratio(s), d, s->stale_served,
                   ratio((double)s->loads, (double)x->writes));
        }
    }

    printf("\n== database queries (measured window) ==\n");
    printf("%-11s %9s %9s %9s %9s %9s %10s %10s %11s %11s\n", "mode",
           "requests", "req/s", "errors", "loads", "uncached", "writes",
           "db/req", "reduction", "pg stmts");
    for (int m = 0; m < MODE_COUNT; m++) {
        const mode_result_t *x = &res[m];
        char red[32], pgs[32];
        if (!x->ran) {
            continue;
        }
        pct(red, sizeof(red), all_reduction(x, base));
        if (x->pg_statements >= 0) {
            snprintf(pgs, sizeof(pgs), "%lld", x->pg_statements);
        } else {
            snprintf(pgs, sizeof(pgs), "-");
        }
        printf("%-11s %9" PRIu64 " %9.0f %9" PRIu64 " %9" PRIu64 " %9" PRIu64
               " %10" PRIu64 " %10.4f %11s %11s\n",
               MODE_NAME[m], total_requests(x),
               ratio((double)total_requests(x), x->seconds), total_errors(x),
               x->loads, x->uncached_reads, x->writes, db_per_request(x), red,
               pgs);
    }

    printf("\n== client latency per endpoint, p50 / p99 in ms ==\n");
    printf("%-30s", "endpoint");
    for (int m = 0; m < MODE_COUNT; m++) {
        if (res[m].ran) {
            printf(" %21s", MODE_NAME[m]);
        }
    }
    printf("\n");
    for (int e = 0; e < EP_COUNT; e++) {
        printf("%-30s", EPS[e].name);
        for (int m = 0; m < MODE_COUNT; m++) {
            if (res[m].ran) {
                printf("  %8.3f / %8.3f", res[m].p50[e] / 1000.0,
                       res[m].p99[e] / 1000.0);
            }
        }
        printf("\n");
    }

    printf("\n== warm on write: feedback_stats (measured window%s) ==\n",
           o->refill_off ? ", refills off" : "");
    printf("%-11s %8s %8s %8s %8s %8s %7s %7s %8s %8s %8s %8s %s\n", "mode",
           "reads", "distinct", "hit", "bound", "cold bd", "lib hit", "writes",
           "loads", "ld/write", "pg/write", "refills",
           "ref.hits skip cold/rate/overflow/breaker, raced, wait t/o (all)");
    for (int m = 0; m < MODE_COUNT; m++) {
        const mode_result_t *x = &res[m];
        const ks_snap_t *k = find_ks(&x->delta, "feedback_stats");
        const ks_snap_t *all = &x->delta.all;
        char h[32], bd[32], cb[32], lh[32], pw[32];
        if (!x->ran || k == NULL) {
            continue;
        }
        pct(h, sizeof(h), fs_client_hit(x));
        pct(bd, sizeof(bd), fs_bound(x));
        pct(cb, sizeof(cb), fs_cold_bound(x));
        pct(lh, sizeof(lh), fs_hit_rate(x));
        if (x->pg_fs_queries >= 0) {
            snprintf(pw, sizeof(pw), "%.3f", pg_fs_per_write(x));
        } else {
            snprintf(pw, sizeof(pw), "-");
        }
        printf("%-11s %8" PRIu64 " %8" PRIu64 " %8s %8s %8s %7s %7" PRIu64
               " %8" PRIu64 " %8.3f %8s %8" PRIu64 " %8" PRIu64 " %" PRIu64
               "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 ", %" PRIu64 ", %" PRIu64
               "\n",
               MODE_NAME[m], x->fs_reads, x->distinct, h, bd, cb, lh,
               x->fb_writes, k->loads, fs_loads_per_write(x), pw, k->refills,
               k->refill_hits, k->refill_skipped_cold, k->refill_skipped_rate,
               k->refill_skipped_overflow, k->refill_skipped_breaker,
               k->refill_raced, all->refill_wait_timeouts);
    }
    printf("\n== first statistics read of a hot insight after its write "
           "==\n"
           "hot: among the library's %ld most read in every reading of its "
           "list from 1.25 s before the write to the read, and no other "
           "write of it\nin flight when the read started (the target; "
           "\"overlap\" counts those left out);\n"
           "Zipf: of Zipf rank < %ld, whether the library's record had learnt "
           "it or not, every such read\n",
           o->hot, o->hot);
    printf("%-11s %-5s %9s %9s %9s %9s %9s %12s %11s %7s\n", "mode", "hot",
           "reads", "p50 ms", "p99 ms", "HIT", "MISS", "hit p99 ms", "readings",
           "overlap");
    for (int m = 0; m < MODE_COUNT; m++) {
        const mode_result_t *x = &res[m];
        if (!x->ran) {
            continue;
        }
        if (m != MODE_NOCACHE) {
            printf("%-11s %-5s %9" PRIu64 " %9.3f %9.3f %9" PRIu64 " %9" PRIu64
                   " %12.3f %5" PRIu64 "/%-5" PRIu64 " %7" PRIu64 "\n",
                   MODE_NAME[m], "hot", x->rawl_n, x->rawl_p50 / 1000.0,
                   x->rawl_p99 / 1000.0, x->rawl_xc[XC_HIT],
                   x->rawl_xc[XC_MISS], x->hit_p99 / 1000.0, x->hot_readings,
                   x->hot_readings + x->hot_failures, x->rawl_overlapped);
        }
        printf("%-11s %-5s %9" PRIu64 " %9.3f %9.3f %9" PRIu64 " %9" PRIu64
               " %12.3f\n",
               MODE_NAME[m], "Zipf", x->raw_n, x->raw_p50 / 1000.0,
               x->raw_p99 / 1000.0, x->raw_xc[XC_HIT], x->raw_xc[XC_MISS],
               x->hit_p99 / 1000.0);
    }

    printf("\n== stale-read checker ==\n");
    for (int m = 0; m < MODE_COUNT; m++) {
        const mode_result_t *x = &res[m];
        if (!x->ran) {
            continue;
        }
        printf("%-11s stats reads checked %" PRIu64 " (%" PRIu64
               " after a counted rating), violations %" PRIu64,
               MODE_NAME[m], x->checked, x->informative, x->violations);
        if (x->injected >= 0) {
            printf("; behind-the-back writes %ld, flagged %ld", x->injected,
                   x->injected_flagged);
        }
        printf("\n");
        for (size_t k = 0; k < x->nshown; k++) {
            printf("    %s: total_ratings %d, expected >= %d (at %.2f s)\n",
                   x->shown[k].insight, x->shown[k].got, x->shown[k].want,
                   x->shown[k].at_s);
        }
    }
    (void)o;
}

/* ---- the HTML report ------------------------------------------------------
 */

static const char *const COLORS[] = {"#9a9a9a", "#d95f02", "#1b9e77"};

static void html_esc(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '<') {
            fputs("&lt;", f);
        } else if (*s == '>') {
            fputs("&gt;", f);
        } else if (*s == '&') {
            fputs("&amp;", f);
        } else {
            fputc(*s, f);
        }
    }
}

/*
 * Horizontal grouped bars: one group per label, one bar per mode that ran.
 * v[g][m] in [0, vmax] (log10 scale when logscale, values > 0).
 */
static void svg_bars_to(FILE *f, const char *title, const char *const *labels,
                        size_t ng, double (*v)[MODE_COUNT], const int *ran,
                        double vmax, int logscale, const char *unit)
{
    const int left = 230, width = 560, bar = 9, gap = 10;
    int nm = 0;
    for (int m = 0; m < MODE_COUNT; m++) {
        nm += ran[m];
    }
    int gh = nm * bar + gap;
    int h = 40 + (int)ng * gh + 30;
    double lmin = 0.01, span = logscale ? log10(vmax / lmin) : vmax;
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "font-family='sans-serif' font-size='11'>\n",
            left + width + 90, h);
    fprintf(f, "<text x='4' y='16' font-size='13' font-weight='bold'>");
    html_esc(f, title);
    fprintf(f, "</text>\n");
    for (size_t g = 0; g < ng; g++) {
        int y0 = 30 + (int)g * gh;
        int k = 0;
        fprintf(f, "<text x='%d' y='%d' text-anchor='end'>", left - 6,
                y0 + nm * bar / 2 + 4);
        html_esc(f, labels[g]);
        fprintf(f, "</text>\n");
        for (int m = 0; m < MODE_COUNT; m++) {
            double x, w;
            if (!ran[m]) {
                continue;
            }
            x = v[g][m];
            if (logscale) {
                w = x > lmin ? log10(x / lmin) / span : 0.0;
            } else {
                w = ratio(x, span);
            }
            if (w > 1.0) {
                w = 1.0;
            }
            fprintf(f,
                    "<rect x='%d' y='%d' width='%.1f' height='%d' "
                    "fill='%s'/><text x='%.1f' y='%d' font-size='9'>%.3g%s"
                    "</text>\n",
                    left, y0 + k * bar, w * width, bar - 1, COLORS[m],
                    left + w * width + 3, y0 + k * bar + bar - 1, x, unit);
            k++;
        }
    }
    int ly = h - 12, lx = left;
    for (int m = 0; m < MODE_COUNT; m++) {
        if (!ran[m]) {
            continue;
        }
        fprintf(f,
                "<rect x='%d' y='%d' width='10' height='10' fill='%s'/>"
                "<text x='%d' y='%d'>%s</text>\n",
                lx, ly - 9, COLORS[m], lx + 14, ly, MODE_NAME[m]);
        lx += 120;
    }
    fprintf(f, "</svg>\n");
}

/* Lines, one per mode: y[m][0..n[m]) against x = index * xstep. */
static void svg_lines_to(FILE *f, const char *title, const double *const *y,
                         const size_t *n, const int *ran, double ymin,
                         double ymax, const char *xlabel, const char *ylabel,
                         int logx, const double *const *xs)
{
    const int left = 60, top = 30, w = 640, h = 220;
    double xmax = 1.0, xmin = logx ? 1e30 : 0.0;
    for (int m = 0; m < MODE_COUNT; m++) {
        for (size_t i = 0; ran[m] && i < n[m]; i++) {
            double x = xs != NULL ? xs[m][i] : (double)i;
            if (x > xmax) {
                xmax = x;
            }
            if (logx && x > 0 && x < xmin) {
                xmin = x;
            }
        }
    }
    if (logx && xmin >= xmax) {
        xmin = xmax / 10.0;
    }
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "font-family='sans-serif' font-size='11'>\n",
            left + w + 140, top + h + 40);
    fprintf(f, "<text x='4' y='16' font-size='13' font-weight='bold'>");
    html_esc(f, title);
    fprintf(f, "</text>\n");
    fprintf(f,
            "<rect x='%d' y='%d' width='%d' height='%d' fill='none' "
            "stroke='#ccc'/>\n",
            left, top, w, h);
    fprintf(f,
            "<text x='%d' y='%d' text-anchor='middle'>%s</text>"
            "<text x='4' y='%d'>%s</text>\n",
            left + w / 2, top + h + 32, xlabel, top - 4, ylabel);
    for (int t = 0; t <= 4; t++) {
        double yv = ymin + (ymax - ymin) * t / 4.0;
        int py = top + h - h * t / 4;
        fprintf(f,
                "<text x='%d' y='%d' text-anchor='end' font-size='9'>%.3g"
                "</text><line x1='%d' y1='%d' x2='%d' y2='%d' "
                "stroke='#eee'/>\n",
                left - 4, py + 3, yv, left, py, left + w, py);
        double xv = logx ? xmin * pow(xmax / xmin, t / 4.0) : xmax * t / 4.0;
        fprintf(f,
                "<text x='%d' y='%d' text-anchor='middle' font-size='9'>"
                "%.3g</text>\n",
                left + w * t / 4, top + h + 14, xv);
    }
    int ly = top + 10;
    for (int m = 0; m < MODE_COUNT; m++) {
        size_t step;
        if (!ran[m] || n[m] == 0) {
            continue;
        }
        step = n[m] > 2000 ? n[m] / 2000 : 1;
        fprintf(f,
                "<polyline fill='none' stroke='%s' stroke-width='1.5' "
                "points='",
                COLORS[m]);
        for (size_t i = 0; i < n[m]; i += step) {
            double x = xs != NULL ? xs[m][i] : (double)i;
            double px, py;
            if (logx) {
                px = x > 0 ? log10(x / xmin) / log10(xmax / xmin) : 0.0;
            } else {
                px = x / xmax;
            }
            py = (y[m][i] - ymin) / (ymax - ymin);
            if (py < 0) {
                py = 0;
            }
            if (py > 1) {
                py = 1;
            }
            fprintf(f, "%.1f,%.1f ", left + px * w, top + h - py * h);
        }
        fprintf(f, "'/>\n");
        fprintf(f,
                "<rect x='%d' y='%d' width='10' height='10' fill='%s'/>"
                "<text x='%d' y='%d'>%s</text>\n",
                left + w + 10, ly - 9, COLORS[m], left + w + 24, ly,
                MODE_NAME[m]);
        ly += 16;
    }
    fprintf(f, "</svg>\n");
}

/* --svg-dir: each plot also goes to a file of its own there,
 * simulate-<n>.svg in the order the report draws them (docs/images). */
static const char *g_svg_dir;

static FILE *svg_file(void)
{
    static int n;
    char path[1024];
    FILE *o;

    if (g_svg_dir == NULL) {
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/simulate-%d.svg", g_svg_dir, ++n);
    o = fopen(path, "w");
    if (o == NULL) {
        fprintf(stderr, "uc-simulate: %s: %s\n", path, strerror(errno));
    }
    return o;
}

static void svg_bars(FILE *f, const char *title, const char *const *labels,
                     size_t ng, double (*v)[MODE_COUNT], const int *ran,
                     double vmax, int logscale, const char *unit)
{
    FILE *o = svg_file();

    svg_bars_to(f, title, labels, ng, v, ran, vmax, logscale, unit);
    if (o != NULL) {
        svg_bars_to(o, title, labels, ng, v, ran, vmax, logscale, unit);
        fclose(o);
    }
}

static void svg_lines(FILE *f, const char *title, const double *const *y,
                      const size_t *n, const int *ran, double ymin, double ymax,
                      const char *xlabel, const char *ylabel, int logx,
                      const double *const *xs)
{
    FILE *o = svg_file();

    svg_lines_to(f, title, y, n, ran, ymin, ymax, xlabel, ylabel, logx, xs);
    if (o != NULL) {
        svg_lines_to(o, title, y, n, ran, ymin, ymax, xlabel, ylabel, logx, xs);
        fclose(o);
    }
}

static int write_report(const char *path, const mode_result_t *res,
                        const opts_t *o, const target_t *t, size_t nt)
{
    FILE *f = fopen(path, "w");
    int ran[MODE_COUNT];
    const mode_result_t *base = &res[MODE_NOCACHE];
    char a[32];

    if (f == NULL) {
        fprintf(stderr, "simulate: cannot write '%s': %s\n", path,
                strerror(errno));
        return -1;
    }
    for (int m = 0; m < MODE_COUNT; m++) {
        ran[m] = res[m].ran;
    }
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
               "<title>utxoiq-api workload simulation</title>\n"
               "<style>body{font-family:sans-serif;margin:2em;max-width:"
               "1100px}table{border-collapse:collapse;margin:1em 0}"
               "td,th{border:1px solid #ccc;padding:3px "
               "8px;white-space:nowrap;text-align:"
               "right}th{background:#f3f3f3}td.l,th.l{text-align:left}"
               ".pass{color:#1b7e1b;font-weight:bold}.fail{color:#b00;"
               "font-weight:bold}</style></head><body>\n");
    fprintf(f,
            "<h1>utxoiq-api workload simulation</h1>\n<p>Database: %s; "
            "%ld insights, Zipf s = %.2f, %.1f %% writes; %ld client "
            "threads; %ld s measured per mode after %s%ld s of warm-up; %ld "
            "users; warm on write %s.</p>\n",
            o->pg ? "PostgreSQL" : "SQLite", o->insights, g_zipf_s,
            o->writes_pct, o->threads, o->duration_s,
            o->prefill ? "a prefill of every insight and " : "", o->warmup_s,
            o->users,
            o->refill_off ? "off (UTXOCACHE_REFILL_TOP=0)" : "on (default)");

    fprintf(f, "<h2>Targets</h2><table><tr><th class='l'>target</th>"
               "<th>figure</th><th>verdict</th></tr>\n");
    for (size_t i = 0; i < nt; i++) {
        fprintf(f, "<tr><td class='l'>");
        html_esc(f, t[i].what);
        fprintf(f, "</td><td>%s</td><td class='%s'>%s</td></tr>\n", t[i].figure,
                t[i].pass ? "pass" : "fail", t[i].pass ? "PASS" : "FAIL");
    }
    fprintf(f, "</table>\n");

    fprintf(f, "<h2>The mix</h2><table><tr><th class='l'>endpoint</th>"
               "<th>share</th>");
    for (int m = 0; m < MODE_COUNT; m++) {
        if (ran[m]) {
            fprintf(f, "<th>%s: requests</th><th>errors</th>", MODE_NAME[m]);
        }
    }
    fprintf(f, "</tr>\n");
    for (int e = 0; e < EP_COUNT; e++) {
        fprintf(f, "<tr><td class='l'>%s</td><td>%.1f %%</td>", EPS[e].name,
                g_weight[e] / 100.0);
        for (int m = 0; m < MODE_COUNT; m++) {
            if (ran[m]) {
                fprintf(f, "<td>%" PRIu64 "</td><td>%" PRIu64 "</td>",
                        res[m].count[e], res[m].errors[e]);
            }
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");

    fprintf(f, "<h2>Per keyspace</h2><table><tr><th class='l'>mode</th>"
               "<th class='l'>keyspace</th><th>reads</th><th>hit rate</th>"
               "<th>near tier</th><th>redis tier</th><th>loads</th>"
               "<th>loads/read</th><th>load reduction</th><th>stale "
               "served</th><th>loads/write</th></tr>\n");
    for (int m = 0; m < MODE_COUNT; m++) {
        if (!ran[m]) {
            continue;
        }
        for (size_t k = 0; k < res[m].delta.n; k++) {
            const ks_snap_t *s = &res[m].delta.ks[k];
            const ks_snap_t *s0 =
                base->ran ? find_ks(&base->delta, s->name) : NULL;
            char h[32], nr[32], rr[32], red[32];
            pct(h, sizeof(h), ratio((double)s->hits, (double)ks_reads(s)));
            pct(nr, sizeof(nr),
                ratio((double)s->near_hits,
                      (double)(s->near_hits + s->near_misses)));
            pct(rr, sizeof(rr),
                ratio((double)s->redis_hits,
                      (double)(s->redis_hits + s->redis_misses)));
            pct(red, sizeof(red),
                s0 != NULL ? reduction((double)s->loads, (double)ks_reads(s),
                                       (double)s0->loads, (double)ks_reads(s0))
                           : NAN);
            fprintf(f,
                    "<tr><td class='l'>%s</td><td class='l'>%s</td><td>%" PRIu64
                    "</td><td>%s</td><td>%s</td><td>%s</td><td>%" PRIu64
                    "</td><td>%.4f</td><td>%s</td><td>%" PRIu64
                    "</td><td>%.3f</td></tr>\n",
                    MODE_NAME[m], s->name, ks_reads(s), h, nr, rr, s->loads,
                    ks_load_ratio(s), red, s->stale_served,
                    ratio((double)s->loads, (double)res[m].writes));
        }
    }
    fprintf(f, "</table>\n");

    fprintf(f,
            "<h2>Database queries</h2><p>Estimated queries = loader "
            "calls (the keyspaces' <code>loads</code>) + reads answered "
            "without the cache (no X-Cache header) + acknowledged "
            "writes; the reduction compares queries per request with the "
            "no-cache mode.%s</p>\n",
            o->pg ? " On PostgreSQL the statements pg_stat_statements "
                    "counted in the mode's database are shown beside it."
                  : "");
    fprintf(f, "<table><tr><th class='l'>mode</th><th>requests</th>"
               "<th>req/s</th><th>errors</th><th>loads</th><th>uncached "
               "reads</th><th>writes</th><th>queries/request</th>"
               "<th>reduction</th><th>PostgreSQL statements</th></tr>\n");
    for (int m = 0; m < MODE_COUNT; m++) {
        if (!ran[m]) {
            continue;
        }
        const mode_result_t *x = &res[m];
        pct(a, sizeof(a), all_reduction(x, base));
        fprintf(f,
                "<tr><td class='l'>%s</td><td>%" PRIu64 "</td><td>%.0f</td>"
                "<td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64
                "</td><td>%" PRIu64 "</td><td>%.4f</td><td>%s</td>",
                MODE_NAME[m], total_requests(x),
                ratio((double)total_requests(x), x->seconds), total_errors(x),
                x->loads, x->uncached_reads, x->writes, db_per_request(x), a);
        if (x->pg_statements >= 0) {
            fprintf(f, "<td>%lld (%.3f/request)</td></tr>\n", x->pg_statements,
                    ratio((double)x->pg_statements, (double)total_requests(x)));
        } else {
            fprintf(f, "<td>-</td></tr>\n");
        }
    }
    fprintf(f, "</table>\n");

    fprintf(f, "<h2>Client latency (ms)</h2><table><tr><th class='l'>"
               "endpoint</th>");
    for (int m = 0; m < MODE_COUNT; m++) {
        if (ran[m]) {
            fprintf(f, "<th>%s p50</th><th>p99</th>", MODE_NAME[m]);
        }
    }
    fprintf(f, "</tr>\n");
    for (int e = 0; e < EP_COUNT; e++) {
        fprintf(f, "<tr><td class='l'>%s</td>", EPS[e].name);
        for (int m = 0; m < MODE_COUNT; m++) {
            if (ran[m]) {
                fprintf(f, "<td>%.3f</td><td>%.3f</td>", res[m].p50[e] / 1000.0,
                        res[m].p99[e] / 1000.0);
            }
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");

    fprintf(f,
            "<h2>Warm on write: feedback_stats</h2><p>Statistics reads "
            "(both endpoints), the distinct insights they read, their "
            "X-Cache hit rate, its bound 1 - distinct / reads and the bound "
            "with only the insights first read in the window; the "
            "library's hit rate; acknowledged feedback writes (rate, "
            "comment, flag), feedback_stats loads per write, the "
            "statistics query's calls per write (pg_stat_statements), and "
            "the refill counters. Then the first read of a hot insight "
            "that started after a write of it was acknowledged, beside the "
            "p99 of all HITs: hot as the library ranks it (among its %ld "
            "most read in every reading of its list, four a second, from "
            "1.25 s before the write to the read, with no other write of "
            "the insight in flight when the read started; the target), and "
            "hot by the mix (Zipf rank &lt; %ld), whether the library's "
            "record had learnt it or not.</p>\n",
            o->hot, o->hot);
    fprintf(f, "<table><tr><th class='l'>mode</th><th>reads</th>"
               "<th>distinct</th><th>hit rate</th><th>bound</th><th>cold "
               "bound</th><th>library hit rate</th><th>writes</th>"
               "<th>loads</th><th>loads/write</th><th>queries/write</th>"
               "<th>refills</th><th>refill hits</th><th>skipped cold</th>"
               "<th>rate</th><th>overflow</th><th>breaker</th></tr>\n");
    for (int m = 0; m < MODE_COUNT; m++) {
        const mode_result_t *x = &res[m];
        const ks_snap_t *k = find_ks(&x->delta, "feedback_stats");
        char h[32], bd[32], cb[32], lh[32];
        if (!ran[m] || k == NULL) {
            continue;
        }
        pct(h, sizeof(h), fs_client_hit(x));
        pct(bd, sizeof(bd), fs_bound(x));
        pct(cb, sizeof(cb), fs_cold_bound(x));
        pct(lh, sizeof(lh), fs_hit_rate(x));
        fprintf(f,
                "<tr><td class='l'>%s</td><td>%" PRIu64 "</td><td>%" PRIu64
                "</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%" PRIu64
                "</td><td>%" PRIu64 "</td><td>%.3f</td>",
                MODE_NAME[m], x->fs_reads, x->distinct, h, bd, cb, lh,
                x->fb_writes, k->loads, fs_loads_per_write(x));
        if (x->pg_fs_queries >= 0) {
            fprintf(f, "<td>%.3f</td>", pg_fs_per_write(x));
        } else {
            fprintf(f, "<td>-</td>");
        }
        fprintf(f,
                "<td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64
                "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64
                "</td></tr>\n",
                k->refills, k->refill_hits, k->refill_skipped_cold,
                k->refill_skipped_rate, k->refill_skipped_overflow,
                k->refill_skipped_breaker);
    }
    fprintf(f, "</table>\n<table><tr><th class='l'>mode</th><th "
               "class='l'>hot</th><th>reads "
               "after a write</th><th>p50 ms</th><th>p99 ms</th><th>HIT</th>"
               "<th>MISS</th><th>p99 of HITs, ms</th></tr>\n");
    for (int m = 0; m < MODE_COUNT; m++) {
        const mode_result_t *x = &res[m];
        if (!ran[m]) {
            continue;
        }
        if (m != MODE_NOCACHE) {
            fprintf(f,
                    "<tr><td class='l'>%s</td><td "
                    "class='l'>library</td><td>%" PRIu64
                    "</td><td>%.3f</td><td>%.3f</td><td>%" PRIu64
                    "</td><td>%" PRIu64 "</td><td>%.3f</td></tr>\n",
                    MODE_NAME[m], x->rawl_n, x->rawl_p50 / 1000.0,
                    x->rawl_p99 / 1000.0, x->rawl_xc[XC_HIT],
                    x->rawl_xc[XC_MISS], x->hit_p99 / 1000.0);
        }
        fprintf(f,
                "<tr><td class='l'>%s</td><td class='l'>Zipf</td><td>%" PRIu64
                "</td><td>%.3f</td>"
                "<td>%.3f</td><td>%" PRIu64 "</td><td>%" PRIu64
                "</td><td>%.3f</td></tr>\n",
                MODE_NAME[m], x->raw_n, x->raw_p50 / 1000.0,
                x->raw_p99 / 1000.0, x->raw_xc[XC_HIT], x->raw_xc[XC_MISS],
                x->hit_p99 / 1000.0);
    }
    fprintf(f, "</table>\n");

    fprintf(f, "<h2>Stale reads</h2><table><tr><th class='l'>mode</th>"
               "<th>stats reads checked</th><th>after a counted rating</th>"
               "<th>violations</th><th>behind-the-back writes</th>"
               "<th>flagged</th></tr>\n");
    for (int m = 0; m < MODE_COUNT; m++) {
        if (!ran[m]) {
            continue;
        }
        fprintf(f,
                "<tr><td class='l'>%s</td><td>%" PRIu64 "</td><td>%" PRIu64
                "</td><td class='%s'>%" PRIu64 "</td>",
                MODE_NAME[m], res[m].checked, res[m].informative,
                res[m].violations == 0 ? "pass" : "fail", res[m].violations);
        if (res[m].injected >= 0) {
            fprintf(f, "<td>%ld</td><td>%ld</td></tr>\n", res[m].injected,
                    res[m].injected_flagged);
        } else {
            fprintf(f, "<td>-</td><td>-</td></tr>\n");
        }
    }
    fprintf(f, "</table>\n");

    /* Plots. */
    {
        const char *labels[MAX_KEYSPACES];
        double v[MAX_KEYSPACES][MODE_COUNT];
        size_t ng = 0;
        const mode_result_t *ref = NULL;
        for (int m = MODE_COUNT - 1; m >= 0 && ref == NULL; m--) {
            if (ran[m]) {
                ref = &res[m];
            }
        }
        for (size_t k = 0; ref != NULL && k < ref->delta.n; k++) {
            labels[ng] = ref->delta.ks[k].name;
            for (int m = 0; m < MODE_COUNT; m++) {
                const ks_snap_t *s =
                    ran[m] ? find_ks(&res[m].delta, labels[ng]) : NULL;
                v[ng][m] = s != NULL ? 100.0 * ratio((double)s->hits,
                                                     (double)ks_reads(s))
                                     : 0.0;
            }
            ng++;
        }
        fprintf(f, "<h2>Plots</h2>\n");
        svg_bars(f, "Hit rate per keyspace (%)", labels, ng, v, ran, 100.0, 0,
                 " %");
    }
    {
        const char *labels[EP_COUNT * 2];
        char names[EP_COUNT * 2][64];
        double v[EP_COUNT * 2][MODE_COUNT];
        double vmax = 1.0;
        for (int e = 0; e < EP_COUNT; e++) {
            snprintf(names[2 * e], sizeof(names[0]), "%s p50", EPS[e].name);
            snprintf(names[2 * e + 1], sizeof(names[0]), "p99");
            labels[2 * e] = names[2 * e];
            labels[2 * e + 1] = names[2 * e + 1];
            for (int m = 0; m < MODE_COUNT; m++) {
                v[2 * e][m] = res[m].p50[e] / 1000.0;
                v[2 * e + 1][m] = res[m].p99[e] / 1000.0;
                if (v[2 * e + 1][m] > vmax) {
                    vmax = v[2 * e + 1][m];
                }
            }
        }
        svg_bars(f, "Client latency per endpoint, ms (log scale)", labels,
                 EP_COUNT * 2, v, ran, vmax * 1.2, 1, " ms");
    }
    {
        double *y[MODE_COUNT] = {NULL}, *x[MODE_COUNT] = {NULL};
        const double *yc[MODE_COUNT], *xc[MODE_COUNT];
        size_t n[MODE_COUNT] = {0};
        for (int m = 0; m < MODE_COUNT; m++) {
            const samples_t *s = &res[m].stats_lat;
            size_t pts = s->n < 400 ? s->n : 400;
            y[m] = calloc(pts + 1, sizeof(double));
            x[m] = calloc(pts + 1, sizeof(double));
            if (!ran[m] || y[m] == NULL || x[m] == NULL || s->n == 0) {
                continue;
            }
            for (size_t i = 0; i < pts; i++) {
                /* Quantiles spaced towards the tail. */
                double q =
                    1.0 - pow(10.0, -4.0 * (double)(i + 1) / (double)pts);
                x[m][i] = quantile(s, q) / 1000.0;
                y[m][i] = q * 100.0;
            }
            n[m] = pts;
        }
        for (int m = 0; m < MODE_COUNT; m++) {
            yc[m] = y[m];
            xc[m] = x[m];
        }
        svg_lines(f,
                  "feedback/stats latency: CDF (percent of reads under "
                  "x ms, x log scale)",
                  yc, n, ran, 0.0, 100.0, "ms", "%", 1, xc);
        for (int m = 0; m < MODE_COUNT; m++) {
            free(y[m]);
            free(x[m]);
        }
    }
    {
        const double *y[MODE_COUNT];
        size_t n[MODE_COUNT];
        double tp[MODE_COUNT][MAX_SECONDS];
        double ymax = 1.0;
        for (int m = 0; m < MODE_COUNT; m++) {
            n[m] = (size_t)o->duration_s < MAX_SECONDS ? (size_t)o->duration_s
                                                       : MAX_SECONDS;
            for (size_t i = 0; i < n[m]; i++) {
                tp[m][i] = res[m].per_s[i];
                if (ran[m] && tp[m][i] > ymax) {
                    ymax = tp[m][i];
                }
            }
            y[m] = tp[m];
        }
        svg_lines(f, "Throughput, requests per second", y, n, ran, 0.0,
                  ymax * 1.1, "s", "req/s", 0, NULL);
        for (int m = 0; m < MODE_COUNT; m++) {
            y[m] = res[m].fs_hit_series;
            n[m] = res[m].nseries;
        }
        svg_lines(f, "feedback_stats hit rate, each second", y, n, ran, 0.0,
                  1.0, "s", "hit rate", 0, NULL);
    }
    fprintf(f, "<p>How each figure is computed: docs/simulate.md.</p>\n"
               "</body></html>\n");
    if (fclose(f) != 0) {
        return -1;
    }
    return 0;
}

/*
 * --sanity, the short run of `make test`: not the targets, only that the
 * run is whole and its figures are figures. Prints each failed condition
 * as "FAIL sanity: ..." and returns how many failed.
 */
static int sanity(const mode_result_t *res, const opts_t *o, const char *report)
{
    struct stat st;
    int bad = 0;
#define SANE(cond, ...)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("FAIL sanity: " __VA_ARGS__);                               \
            printf("\n");                                                      \
            bad++;                                                             \
        }                                                                      \
    } while (0)
    SANE(stat(report, &st) == 0 && st.st_size > 1000,
         "report '%s' missing or empty", report);
    for (int m = 0; m < MODE_COUNT; m++) {
        const mode_result_t *x = &res[m];
        if ((o->modes & (1u << m)) == 0) {
            continue;
        }
        SANE(x->ran, "%s: did not run", MODE_NAME[m]);
        if (!x->ran) {
            continue;
        }
        SANE(total_requests(x) > 0, "%s: no requests", MODE_NAME[m]);
        SANE(total_errors(x) == 0, "%s: %" PRIu64 " failed requests",
             MODE_NAME[m], total_errors(x));
        SANE(x->violations == 0, "%s: %" PRIu64 " stale reads", MODE_NAME[m],
             x->violations);
        SANE(x->checked > 0, "%s: no stats read checked", MODE_NAME[m]);
        SANE(find_ks(&x->delta, "feedback_stats") != NULL,
             "%s: no feedback_stats keyspace in the cache stats", MODE_NAME[m]);
        if (m == MODE_NOCACHE) {
            SANE(fs_hit_rate(x) == 0.0, "no cache: hits seen");
            SANE(x->injected <= 0 || x->injected_flagged == 0,
                 "no cache: a behind-the-back write flagged");
            continue;
        }
        double h = fs_hit_rate(x);
        double r1 = fs_reduction(x, &res[MODE_NOCACHE]);
        double r2 = all_reduction(x, &res[MODE_NOCACHE]);
        SANE(h > 0.0 && h <= 1.0, "%s: feedback_stats hit rate %f",
             MODE_NAME[m], h);
        if (res[MODE_NOCACHE].ran) {
            SANE(r1 > 0.0 && r1 <= 1.0, "%s: feedback_stats reduction %f",
                 MODE_NAME[m], r1);
            SANE(r2 > 0.0 && r2 <= 1.0, "%s: load reduction %f", MODE_NAME[m],
                 r2);
        }
        SANE(x->injected <= 0 || x->injected_flagged > 0,
             "%s: the checker flagged none of %ld behind-the-back writes",
             MODE_NAME[m], x->injected);
        SANE(x->hot_readings > 0 && x->hot_failures == 0,
             "%s: the library's record read %" PRIu64 " times, %" PRIu64
             " failed",
             MODE_NAME[m], x->hot_readings, x->hot_failures);
        SANE(x->rawl_n > 0,
             "%s: no read after a write of an insight the "
             "library ranked hot",
             MODE_NAME[m]);
    }
#undef SANE
    return bad;
}

/* ---- main ------------------------------------------------------------------
 */

static const char usage[] =
    "usage: uc-simulate [--db sqlite|pg] [--insights N] [--duration S]\n"
    "                   [--warmup S] [--no-prefill] [--threads N]\n"
    "                   [--users N] [--modes nocache,redis,near]\n"
    "                   [--inject-stale N] [--report PATH] [--api-bin PATH]\n"
    "                   [--check] [--sanity] [--keep]\n"
    "                   [--zipf S] [--writes PCT] [--refill-off] [--hot N]\n"
    "                   [--service-env VAR=VALUE]... [--svg-dir DIR]\n"
    "defaults: sqlite, 100000 insights, 60 s per mode after 10 s of\n"
    "warm-up and a prefill, 4 threads, 128 users, all three modes, 20\n"
    "behind-the-back writes, the report in the build tree, Zipf s = 0.99\n"
    "over the insights, 5 % writes (--writes scales the write endpoints'\n"
    "weights to that share and the reads' to the rest), warm on write on\n"
    "(--refill-off: UTXOCACHE_REFILL_TOP=0), the 1000 most read ranks hot\n"
    "for the read after a write (--hot); --service-env (up to 4) adds a\n"
    "variable the simulator does not set itself to the service's "
    "environment.\n";

static int num_arg(const char *name, const char *v, long lo, long hi, long *out)
{
    if (uc_bench_parse_long(v, lo, hi, out) != 0) {
        fprintf(stderr, "uc-simulate: %s: expects %ld to %ld\n", name, lo, hi);
        return -1;
    }
    return 0;
}

static int parse_modes(const char *s, unsigned *out)
{
    unsigned m = 0;
    char buf[128];
    size_t i = 0;
    snprintf(buf, sizeof(buf), "%s", s);
    while (buf[i] != '\0') {
        size_t len = strcspn(buf + i, ",");
        int found = 0;
        for (int k = 0; k < MODE_COUNT; k++) {
            if (strlen(MODE_ID[k]) == len &&
                strncmp(buf + i, MODE_ID[k], len) == 0) {
                m |= 1u << k;
                found = 1;
            }
        }
        if (!found) {
            return -1;
        }
        i += len;
        if (buf[i] == ',') {
            i++;
        }
    }
    *out = m;
    return m != 0 ? 0 : -1;
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    o->insights = 100000;
    o->duration_s = 60;
    o->warmup_s = 10;
    o->threads = 4;
    o->users = 128;
    o->prefill = 1;
    o->inject = 20;
    o->modes = (1u << MODE_COUNT) - 1;
    o->writes_pct = 5.0;
    o->hot = HOT_RANKS;
    o->api_bin = UC_SIM_API_BINARY;
    o->report = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else if (strcmp(a, "--no-prefill") == 0) {
            o->prefill = 0;
            continue;
        } else if (strcmp(a, "--check") == 0) {
            o->check = 1;
            continue;
        } else if (strcmp(a, "--sanity") == 0) {
            o->sanity = 1;
            continue;
        } else if (strcmp(a, "--keep") == 0) {
            o->keep = 1;
            continue;
        } else if (strcmp(a, "--refill-off") == 0) {
            o->refill_off = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "uc-simulate: %s: missing value\n%s", a, usage);
            return -1;
        }
        i++;
        if (strcmp(a, "--db") == 0) {
            if (strcmp(v, "pg") == 0 || strcmp(v, "postgresql") == 0) {
                o->pg = 1;
            } else if (strcmp(v, "sqlite") == 0) {
                o->pg = 0;
            } else {
                rc = -1;
            }
        } else if (strcmp(a, "--insights") == 0) {
            rc = num_arg(a, v, 100, 1000000, &o->insights);
        } else if (strcmp(a, "--duration") == 0) {
            rc = num_arg(a, v, 1, MAX_SECONDS - 1, &o->duration_s);
        } else if (strcmp(a, "--warmup") == 0) {
            rc = num_arg(a, v, 0, 3600, &o->warmup_s);
        } else if (strcmp(a, "--threads") == 0) {
            rc = num_arg(a, v, 1, 256, &o->threads);
        } else if (strcmp(a, "--users") == 0) {
            rc = num_arg(a, v, 1, MAX_USERS, &o->users);
        } else if (strcmp(a, "--service-env") == 0) {
            rc = o->nsvc_env < SVC_ENV_MAX && strchr(v, '=') != NULL ? 0 : -1;
            if (rc == 0) {
                o->svc_env[o->nsvc_env++] = v;
            }
        } else if (strcmp(a, "--hot") == 0) {
            rc = num_arg(a, v, 1, 1000000, &o->hot);
        } else if (strcmp(a, "--inject-stale") == 0) {
            long n = 0;
            rc = num_arg(a, v, 0, 1000, &n);
            o->inject = (int)n;
        } else if (strcmp(a, "--modes") == 0) {
            rc = parse_modes(v, &o->modes);
        } else if (strcmp(a, "--report") == 0) {
            o->report = v;
        } else if (strcmp(a, "--api-bin") == 0) {
            o->api_bin = v;
        } else if (strcmp(a, "--svg-dir") == 0) {
            g_svg_dir = v;
        } else if (strcmp(a, "--zipf") == 0) {
            char *end = NULL;
            double z = strtod(v, &end);
            rc = end != v && *end == '\0' && z >= 0.1 && z <= 3.0 ? 0 : -1;
            g_zipf_s = z;
        } else if (strcmp(a, "--writes") == 0) {
            char *end = NULL;
            double w = strtod(v, &end);
            rc = end != v && *end == '\0' && w >= 0.1 && w <= 50.0 ? 0 : -1;
            o->writes_pct = w;
        } else {
            fprintf(stderr, "uc-simulate: unknown option '%s'\n%s", a, usage);
            return -1;
        }
        if (rc != 0) {
            fprintf(stderr, "uc-simulate: %s: bad value '%s'\n", a, v);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    setup_t s;
    mode_result_t *res = NULL;
    double *cdf = NULL, job_cdf[MAX_JOBS];
    uint32_t *perm = NULL, *rank_of = NULL;
    struct curl_slist *uh[MAX_USERS] = {NULL}, *uhp[MAX_USERS] = {NULL};
    struct curl_slist *svh = NULL;
    char report[1024];
    target_t t[40];
    size_t nt;
    int rc = 2, failed = 0;

    memset(&o, 0, sizeof(o));
    if (parse_opts(argc, argv, &o) != 0) {
        return 2;
    }
    set_weights(o.writes_pct);
    if (o.report != NULL) {
        char dir[1024];
        snprintf(report, sizeof(report), "%s", o.report);
        snprintf(dir, sizeof(dir), "%s", o.report);
        char *slash = strrchr(dir, '/');
        if (slash != NULL && slash != dir) {
            *slash = '\0';
            (void)mkdir(dir, 0755);
        }
    } else {
        (void)mkdir(UC_SIM_REPORT_DIR, 0755);
        snprintf(report, sizeof(report), "%s/report.html", UC_SIM_REPORT_DIR);
    }
    /* api_server.c starts the binary UC_API_BINARY names. */
    setenv("UC_API_BINARY", o.api_bin, 1);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&s, 0, sizeof(s));
    s.o = &o;
    s.user_keys = calloc((size_t)o.users, sizeof(*s.user_keys));
    res = calloc(MODE_COUNT, sizeof(*res));
    if (s.user_keys == NULL || res == NULL ||
        uc_test_mkdtemp(s.db.dir, sizeof(s.db.dir), "simulate") != 0) {
        fprintf(stderr, "uc-simulate: out of memory or no temporary dir\n");
        goto out;
    }
    printf("uc-simulate: %s, %ld insights, Zipf s = %.2f, %.1f %% writes, "
           "%ld s per mode, %ld threads, refills %s, work in %s\n",
           o.pg ? "postgresql" : "sqlite", o.insights, g_zipf_s, o.writes_pct,
           o.duration_s, o.threads, o.refill_off ? "off" : "on", s.db.dir);
    if (setup(&s) != 0) {
        goto out;
    }

    /* Zipf over the insights, ranks shuffled onto ids (fixed seed). */
    cdf = zipf_cdf_new((size_t)o.insights, g_zipf_s);
    perm = malloc((size_t)o.insights * sizeof(*perm));
    rank_of = malloc((size_t)o.insights * sizeof(*rank_of));
    if (cdf == NULL || perm == NULL || rank_of == NULL) {
        goto out;
    }
    uint64_t rng = UINT64_C(0x2545f4914f6cdd1d);
    for (long i = 0; i < o.insights; i++) {
        perm[i] = (uint32_t)i;
    }
    for (long i = o.insights - 1; i > 0; i--) {
        long k = (long)(uc_bench_rng_next(&rng) % (uint64_t)(i + 1));
        uint32_t x = perm[i];
        perm[i] = perm[k];
        perm[k] = x;
    }
    for (long i = 0; i < o.insights; i++) {
        rank_of[perm[i]] = (uint32_t)i;
    }
    /* Jobs: Zipf too (the running ones are watched most). */
    double sum = 0.0;
    for (size_t k = 0; k < s.njobs; k++) {
        sum += 1.0 / pow((double)(k + 1), g_zipf_s);
        job_cdf[k] = sum;
    }
    for (size_t k = 0; k < s.njobs; k++) {
        job_cdf[k] /= sum;
    }
    job_cdf[s.njobs - 1] = 1.0;
    for (long u = 0; u < o.users; u++) {
        uh[u] = hdr_list(s.user_keys[u], 0);
        uhp[u] = hdr_list(s.user_keys[u], 1);
    }
    svh = hdr_list(s.svc_key, 1);

    for (int m = 0; m < MODE_COUNT && !interrupted; m++) {
        if ((o.modes & (1u << m)) == 0) {
            continue;
        }
        if (run_mode(&s, m, cdf, perm, rank_of, job_cdf, uh, uhp, svh,
                     &res[m]) != 0) {
            fprintf(stderr, "uc-simulate: mode '%s' failed\n", MODE_NAME[m]);
            failed = 1;
        }
    }
    print_tables(res, &o);
    nt = targets(res, &o, t, sizeof(t) / sizeof(t[0]));
    printf("\n== targets ==\n");
    int missed = 0, stale = 0;
    for (size_t i = 0; i < nt; i++) {
        printf("  %-66s %10s  %s\n", t[i].what, t[i].figure,
               t[i].pass ? "PASS" : "FAIL");
        missed |= !t[i].pass;
    }
    for (int m = 0; m < MODE_COUNT; m++) {
        stale |= res[m].ran && res[m].violations > 0;
        if (res[m].ran && res[m].injected > 0 && res[m].injected_flagged == 0 &&
            m != MODE_NOCACHE) {
            printf("  note: %s: no behind-the-back write was flagged\n",
                   MODE_NAME[m]);
        }
    }
    if (write_report(report, res, &o, t, nt) == 0) {
        printf("\nreport: %s\n", report);
    } else {
        failed = 1;
    }
    rc = failed ? 2 : stale || (o.check && missed) ? 1 : 0;
    if (o.sanity && sanity(res, &o, report) != 0 && rc == 0) {
        rc = 1;
    }
out:
    for (long u = 0; u < o.users && u < MAX_USERS; u++) {
        curl_slist_free_all(uh[u]);
        curl_slist_free_all(uhp[u]);
    }
    curl_slist_free_all(svh);
    if (res != NULL) {
        for (int m = 0; m < MODE_COUNT; m++) {
            free(res[m].stats_lat.v);
        }
    }
    free(res);
    free(cdf);
    free(perm);
    free(rank_of);
    free(s.user_keys);
    if (s.db.pg) {
        uc_test_pg_stop(&s.db.pgs);
    }
    if (s.db.dir[0] != '\0' && !o.keep) {
        uc_test_rmtree(s.db.dir);
    }
    curl_global_cleanup();
    return rc;
}
