/* SPDX-License-Identifier: MIT */
/*
 * uc-near-bench: the near cache's hit path against the memory backend's get,
 * side by side. Both hold the same keys (10^4 by default) with values of one
 * size (200 bytes); N threads then read them for a fixed time, the keys
 * drawn uniformly or from a Zipf law (s = 0.99) through a precomputed
 * sequence, so no random number is drawn in the timed loop.
 *
 * A near hit is uc__near_get() (hash, one shard lock, a reference taken),
 * a read of the meta's expiry and of the value's last byte, as the core
 * would judge and send it, and uc__near_release(). A memory backend hit is its
 * ops->get, which copies the value into a fresh buffer, one read of it and
 * free(). Also measured: the near cache's put of a key already in (a
 * refresh: one allocation and copy, the old entry freed). Each figure is the
 * median of --repeat runs; it is a measurement, not a test, and exits 0
 * unless a run fails (a miss counts as a failure: every key is in).
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "near.h"
#include "store.h"

#define THREADS_MAX 64
#define SEQ_LEN ((size_t)1 << 20) /* a power of two */
#define KEY_CAP 32
#define REPEAT_MAX 9

typedef struct {
    long nkeys;
    long vlen;
    long secs;
    long repeat;
    long threads;
} opts_t;

typedef enum { OP_NEAR_GET, OP_MEMORY_GET, OP_NEAR_PUT } op_t;

static const char *const op_names[] = {"near get", "memory get", "near put"};

typedef struct {
    char (*keys)[KEY_CAP];
    size_t *klens;
    uint32_t *seq_uniform;
    uint32_t *seq_zipf;
    char *value;
    size_t vlen;
    uc__near_t *near;
    uc__backend_t *mem;
} world_t;

/* One per thread, each on cache lines of its own: its counters are
 * written on every operation, and a line shared with the other thread's
 * would be measured instead of the cache. */
typedef struct {
    alignas(64) const world_t *w;
    const uint32_t *seq;
    op_t op;
    size_t start;
    pthread_barrier_t *go;
    _Atomic int *stop;
    uint64_t ops;
    uint64_t ns;
    uint64_t failures;
    unsigned sink;
} worker_t;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* Key indices drawn uniformly, and from Zipf(0.99) by inverting its CDF
 * (ranks mapped through a shuffle, so hot keys are not neighbours). */
static int make_sequences(world_t *w, size_t nkeys)
{
    double *cdf = malloc(nkeys * sizeof(*cdf));
    uint32_t *perm = malloc(nkeys * sizeof(*perm));
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    double sum = 0.0;

    w->seq_uniform = malloc(SEQ_LEN * sizeof(uint32_t));
    w->seq_zipf = malloc(SEQ_LEN * sizeof(uint32_t));
    if (cdf == NULL || perm == NULL || w->seq_uniform == NULL ||
        w->seq_zipf == NULL) {
        free(cdf);
        free(perm);
        return -1;
    }
    for (size_t i = 0; i < nkeys; i++) {
        sum += 1.0 / pow((double)(i + 1), 0.99);
        cdf[i] = sum;
        perm[i] = (uint32_t)i;
    }
    for (size_t i = nkeys - 1; i > 0; i--) {
        size_t j = (size_t)(xorshift(&rng) % (i + 1));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < SEQ_LEN; i++) {
        double u = (double)(xorshift(&rng) >> 11) / 9007199254740992.0 * sum;
        size_t lo = 0, hi = nkeys - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cdf[mid] < u) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        w->seq_zipf[i] = perm[lo];
        w->seq_uniform[i] = (uint32_t)(xorshift(&rng) % nkeys);
    }
    free(cdf);
    free(perm);
    return 0;
}

static int one_op(worker_t *a, uint32_t k, uint64_t now_ms)
{
    const world_t *w = a->w;
    const char *key = w->keys[k];
    size_t klen = w->klens[k];

    switch (a->op) {
    case OP_NEAR_GET: {
        uc__near_entry_t *e = uc__near_get(w->near, 0, key, klen, now_ms);
        if (e == NULL) {
            return -1;
        }
        a->sink += (unsigned char)uc__near_value(e)[uc__near_len(e) - 1] +
                   (unsigned)uc__near_meta(e)->expires_ms;
        uc__near_release(e);
        return 0;
    }
    case OP_MEMORY_GET: {
        char *v = NULL;
        size_t len = 0;
        if (w->mem->ops->get(w->mem, key, klen, &v, &len) != UC_OK) {
            return -1;
        }
        a->sink += (unsigned char)v[len - 1];
        free(v);
        return 0;
    }
    case OP_NEAR_PUT: {
        uc__near_meta_t m = {0};
        return uc__near_put(w->near, 0, key, klen, uc__near_ticket(w->near),
                            w->value, w->vlen, &m, now_ms, NULL) == 1
                   ? 0
                   : -1;
    }
    }
    return -1;
}

static void *worker_main(void *p)
{
    worker_t *a = p;
    size_t pos = a->start;
    uint64_t now_ms = wall_ms();
    uint64_t t0;

    pthread_barrier_wait(a->go);
    t0 = uc_bench_now_ns();
    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        for (unsigned i = 0; i < 256; i++) {
            if (one_op(a, a->seq[pos], now_ms) != 0) {
                a->failures++;
            }
            pos = (pos + 1) & (SEQ_LEN - 1);
        }
        a->ops += 256;
    }
    a->ns = uc_bench_now_ns() - t0;
    return NULL;
}

/* One timed run; ops per second over all threads, or -1 on failure. */
static double run_once(const world_t *w, op_t op, const uint32_t *seq,
                       long threads, long secs)
{
    pthread_t th[THREADS_MAX];
    worker_t args[THREADS_MAX];
    pthread_barrier_t go;
    _Atomic int stop = 0;
    struct timespec pause = {(time_t)secs, 0};
    double rate = 0.0;
    int failed = 0;

    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    for (long i = 0; i < threads; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        args[i].w = w;
        args[i].seq = seq;
        args[i].op = op;
        args[i].start = (size_t)i * (SEQ_LEN / (size_t)threads);
        args[i].go = &go;
        args[i].stop = &stop;
        if (pthread_create(&th[i], NULL, worker_main, &args[i]) != 0) {
            fprintf(stderr, "uc-near-bench: cannot start a thread\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&go);
    nanosleep(&pause, NULL);
    atomic_store(&stop, 1);
    for (long i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        rate += (double)args[i].ops * 1e9 / (double)args[i].ns;
        if (args[i].failures != 0) {
            fprintf(stderr, "uc-near-bench: %s: %" PRIu64 " failed ops\n",
                    op_names[op], args[i].failures);
            failed = 1;
        }
    }
    pthread_barrier_destroy(&go);
    return failed ? -1.0 : rate;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double run_median(const world_t *w, op_t op, const uint32_t *seq,
                         long threads, const opts_t *o)
{
    double r[REPEAT_MAX];
    for (long i = 0; i < o->repeat; i++) {
        r[i] = run_once(w, op, seq, threads, o->secs);
        if (r[i] < 0) {
            return -1.0;
        }
    }
    qsort(r, (size_t)o->repeat, sizeof(r[0]), cmp_double);
    return r[o->repeat / 2];
}

static int setup(world_t *w, const opts_t *o, uc__env_t *env)
{
    char err[128] = "";
    size_t n = (size_t)o->nkeys;

    w->keys = malloc(n * sizeof(*w->keys));
    w->klens = malloc(n * sizeof(*w->klens));
    w->value = malloc((size_t)o->vlen);
    w->vlen = (size_t)o->vlen;
    if (w->keys == NULL || w->klens == NULL || w->value == NULL ||
        make_sequences(w, n) != 0) {
        fprintf(stderr, "uc-near-bench: out of memory\n");
        return -1;
    }
    memset(w->value, 'x', w->vlen);
    /* Both stores get room for every key many times over. */
    if (uc__near_create(1, &w->near) != UC_OK ||
        uc__near_set_budget(w->near, 0, (size_t)256 << 20) != UC_OK) {
        fprintf(stderr, "uc-near-bench: cannot create the near cache\n");
        return -1;
    }
    uc_config_init(&env->cfg);
    env->cfg.memory_max_bytes = (size_t)256 << 20;
    if (uc__memory_create(env, &w->mem, err, sizeof(err)) != UC_OK) {
        fprintf(stderr, "uc-near-bench: memory backend: %s\n", err);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uc__near_meta_t m = {0};
        snprintf(w->keys[i], KEY_CAP, "bench:near:%06zu", i);
        w->klens[i] = strlen(w->keys[i]);
        if (uc__near_put(w->near, 0, w->keys[i], w->klens[i],
                         uc__near_ticket(w->near), w->value, w->vlen, &m, 0,
                         NULL) != 1 ||
            w->mem->ops->set(w->mem, w->keys[i], w->klens[i], w->value, w->vlen,
                             0) != UC_OK) {
            fprintf(stderr, "uc-near-bench: cannot store key %zu\n", i);
            return -1;
        }
    }
    return 0;
}

static const char usage_text[] =
    "usage: uc-near-bench [--keys N] [--value-size B] [--duration S]\n"
    "                     [--repeat R] [--threads T]\n"
    "  defaults: 10000 keys, 200-byte values, 1 s per run, median of 3,\n"
    "  1 thread then T (2) threads\n";

static int parse_opts(int argc, char **argv, opts_t *o)
{
    o->nkeys = 10000;
    o->vlen = 200;
    o->secs = 1;
    o->repeat = 3;
    o->threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *dst = NULL, lo = 1, hi = 1;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            exit(0);
        } else if (strcmp(a, "--keys") == 0) {
            dst = &o->nkeys, hi = 1000000;
        } else if (strcmp(a, "--value-size") == 0) {
            dst = &o->vlen, hi = 64 * 1024;
        } else if (strcmp(a, "--duration") == 0) {
            dst = &o->secs, hi = 60;
        } else if (strcmp(a, "--repeat") == 0) {
            dst = &o->repeat, hi = REPEAT_MAX;
        } else if (strcmp(a, "--threads") == 0) {
            dst = &o->threads, hi = THREADS_MAX;
        }
        if (dst == NULL || uc_bench_parse_long(v, lo, hi, dst) != 0) {
            fprintf(stderr, "uc-near-bench: bad argument '%s'\n%s", a,
                    usage_text);
            return -1;
        }
        i++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const op_t ops[] = {OP_NEAR_GET, OP_MEMORY_GET, OP_NEAR_PUT};
    opts_t o;
    world_t w;
    uc__env_t env;
    double load[1] = {0.0};
    long tcounts[2];

    memset(&w, 0, sizeof(w));
    if (parse_opts(argc, argv, &o) != 0 || setup(&w, &o, &env) != 0) {
        return 2;
    }
    tcounts[0] = 1;
    tcounts[1] = o.threads;
    getloadavg(load, 1);
    printf("uc-near-bench: %ld keys, %ld-byte values, %ld s per run, median "
           "of %ld; %ld online cpus, load %.2f\n\n",
           o.nkeys, o.vlen, o.secs, o.repeat, sysconf(_SC_NPROCESSORS_ONLN),
           load[0]);
    printf("%-11s %-8s %7s %14s %10s\n", "operation", "keys", "threads",
           "ops/s", "ns/op");
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        for (int d = 0; d < 2; d++) {
            for (int t = 0; t < (o.threads > 1 ? 2 : 1); t++) {
                const uint32_t *seq = d == 0 ? w.seq_uniform : w.seq_zipf;
                double rate = run_median(&w, ops[k], seq, tcounts[t], &o);
                if (rate < 0) {
                    return 1;
                }
                /* ns/op is per thread: the time one operation takes. */
                printf("%-11s %-8s %7ld %14.0f %10.1f\n", op_names[ops[k]],
                       d == 0 ? "uniform" : "zipf", tcounts[t], rate,
                       1e9 * (double)tcounts[t] / rate);
            }
        }
    }
    getloadavg(load, 1);
    printf("\nload %.2f at the end%s\n", load[0],
           load[0] > (double)sysconf(_SC_NPROCESSORS_ONLN)
               ? " (other work ran too: figures are noisy)"
               : "");
    uc__near_destroy(w.near);
    w.mem->ops->destroy(w.mem);
    free(w.keys);
    free(w.klens);
    free(w.value);
    free(w.seq_uniform);
    free(w.seq_zipf);
    return 0;
}
