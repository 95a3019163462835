/* SPDX-License-Identifier: MIT */
/*
 * The record of the most read entries (src/lib/hot.c): exact counts for a
 * small stream; Space-Saving's bounds once keys replace each other (every
 * count an upper bound, count - error a lower one, the counts summing to
 * the stream's length); a Zipf stream's top entries found; memory bounded
 * whatever the number of distinct keys; halving; sampling, fixed and
 * adaptive (in a cache too, switched by its worker); the "is it
 * among the top k" question; threads recording while others query and
 * halve (also run under TSan); and keys parsed back into their fields
 * (src/lib/keyspace.c), which is how the warmer reads them. It also prints
 * what recording costs per read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_int.h"
#include "hot.h"
#include "utxocache/utxocache.h"

/* ---- helpers ------------------------------------------------------------ */

static uc__hot_t *hot_new(size_t capacity, unsigned sample)
{
    uc__hot_t *h = NULL;
    assert_int_equal(uc__hot_create(capacity, sample, &h), UC_OK);
    assert_non_null(h);
    return h;
}

static void add_n(uc__hot_t *h, const char *key, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uc__hot_add(h, key, strlen(key));
    }
}

/* The reads an entry surely had: what the lists are ranked by. */
static uint64_t lower(const uc_hot_entry_t *e)
{
    return e->reads - e->error;
}

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* A Zipf law over n ranks (exponent `s`), drawn by inverting its CDF. */
typedef struct {
    double *cdf;
    size_t n;
} zipf_t;

static zipf_t zipf_new(size_t n, double s)
{
    zipf_t z = {calloc(n, sizeof(double)), n};
    double sum = 0;

    assert_non_null(z.cdf);
    for (size_t i = 0; i < n; i++) {
        sum += 1.0 / pow((double)(i + 1), s);
        z.cdf[i] = sum;
    }
    for (size_t i = 0; i < n; i++) {
        z.cdf[i] /= sum;
    }
    return z;
}

static size_t zipf_draw(const zipf_t *z, uint64_t *rng)
{
    double u = (double)(xs(rng) >> 11) / 9007199254740992.0;
    size_t lo = 0, hi = z->n - 1;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void key_of(size_t rank, char *buf, size_t cap)
{
    snprintf(buf, cap, "stats:key-%zu", rank);
}

static size_t rank_of(const char *key)
{
    return (size_t)strtoul(key + strlen("stats:key-"), NULL, 10);
}

/* ---- tests -------------------------------------------------------------- */

static void exact_small_stream(void **state)
{
    (void)state;
    uc__hot_t *h = hot_new(64, 1);
    uc_hot_entry_t out[8];
    const char *stream = "dadbadcdbdadd"; /* d 7, a 3, b 2, c 1 */
    unsigned want[4] = {0};

    for (const char *p = stream; *p != '\0'; p++) {
        char k[2] = {*p, '\0'};
        uc__hot_add(h, k, 1);
        want[*p - 'a']++;
    }
    assert_int_equal(uc__hot_top(h, out, 8), 4);
    assert_string_equal(out[0].key, "d");
    assert_int_equal(out[0].reads, want[3]);
    assert_string_equal(out[1].key, "a");
    assert_int_equal(out[1].reads, want[0]);
    assert_string_equal(out[2].key, "b");
    assert_int_equal(out[2].reads, want[1]);
    assert_string_equal(out[3].key, "c");
    assert_int_equal(out[3].reads, want[2]);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(out[i].error, 0);
    }
    /* cap smaller than what is held: the most read, and the count held */
    assert_int_equal(uc__hot_top(h, out, 1), 4);
    assert_string_equal(out[0].key, "d");
    assert_int_equal(uc__hot_top(h, NULL, 0), 4);
    /* unread keys, bad arguments */
    assert_false(uc__hot_is_top(h, "e", 1, 4));
    assert_true(uc__hot_is_top(h, "d", 1, 1));
    assert_false(uc__hot_is_top(h, "a", 1, 1));
    assert_true(uc__hot_is_top(h, "c", 1, 4));
    assert_false(uc__hot_is_top(h, "c", 1, 3));
    assert_true(uc__hot_is_top(h, "c", 1, 100)); /* fewer than k held */
    assert_false(uc__hot_is_top(h, "d", 1, 0));
    assert_false(uc__hot_is_top(NULL, "d", 1, 1));
    uc__hot_add(NULL, "x", 1);
    uc__hot_record(NULL, "x", 1);
    assert_int_equal(uc__hot_top(NULL, out, 8), 0);
    assert_int_equal(uc__hot_bytes(NULL), 0);
    uc__hot_destroy(h);
    uc__hot_destroy(NULL);
}

/* Keys of UC_HOT_KEY_MAX bytes or more, and empty ones, are not held. */
static void key_lengths(void **state)
{
    (void)state;
    uc__hot_t *h = hot_new(64, 1);
    char big[UC_HOT_KEY_MAX + 1];
    uc_hot_entry_t out[4];

    memset(big, 'k', sizeof(big));
    uc__hot_add(h, big, UC_HOT_KEY_MAX);
    uc__hot_add(h, big, 0);
    assert_int_equal(uc__hot_top(h, NULL, 0), 0);
    uc__hot_add(h, big, UC_HOT_KEY_MAX - 1);
    assert_int_equal(uc__hot_top(h, out, 4), 1);
    assert_int_equal(strlen(out[0].key), UC_HOT_KEY_MAX - 1);
    /* binary keys are held by value */
    uc__hot_add(h, "a\0b", 3);
    uc__hot_add(h, "a\0c", 3);
    assert_int_equal(uc__hot_top(h, NULL, 0), 3);
    uc__hot_destroy(h);
}

/*
 * More distinct keys than counters: every count is an upper bound of the
 * key's reads and count - error a lower bound, the counts sum to the
 * stream's length, and the record holds exactly its capacity.
 */
static void space_saving_bounds(void **state)
{
    (void)state;
    enum { KEYS = 500, READS = 20000, CAP = 64 };
    uc__hot_t *h = hot_new(CAP, 1);
    unsigned *truth = calloc(KEYS, sizeof(unsigned));
    uc_hot_entry_t *out = calloc(CAP * 2, sizeof(*out));
    zipf_t z = zipf_new(KEYS, 0.8);
    uint64_t rng = 42, sum = 0;
    char k[32];

    assert_non_null(truth);
    assert_non_null(out);
    for (int i = 0; i < READS; i++) {
        size_t r = zipf_draw(&z, &rng);
        key_of(r, k, sizeof(k));
        uc__hot_add(h, k, strlen(k));
        truth[r]++;
    }
    size_t held = uc__hot_top(h, out, CAP * 2);
    assert_int_equal(held, CAP);
    for (size_t i = 0; i < held; i++) {
        size_t r = rank_of(out[i].key);
        sum += out[i].reads;
        assert_true(out[i].reads >= truth[r]);
        assert_true(out[i].reads - out[i].error <= truth[r]);
        /* each shard holds CAP/4 counters of about READS/4 reads */
        assert_true(out[i].error <= READS / (CAP / UC__HOT_SHARDS) * 2);
        if (i > 0) {
            assert_true(lower(&out[i]) <= lower(&out[i - 1]));
        }
    }
    assert_int_equal(sum, READS);
    /* the most read key is always held, and first */
    assert_int_equal(rank_of(out[0].key), 0);
    free(z.cdf);
    free(out);
    free(truth);
    uc__hot_destroy(h);
}

/*
 * A Zipf stream over 10^4 keys, a record of 10 x K counters (the library's
 * default ratio): the true top K are found (with bounded error), and each
 * is "among the top K". With 4 x K counters only about 85 of them are (the
 * counters' floor, N/m, is above the K-th key's reads), which is why the
 * default is 10 x K.
 */
static void zipf_top_k(void **state)
{
    (void)state;
    enum { KEYS = 10000, READS = 200000, K = 100 };
    uc__hot_t *h = hot_new(10 * K, 1);
    unsigned *truth = calloc(KEYS, sizeof(unsigned));
    uc_hot_entry_t *out = calloc(K, sizeof(*out));
    zipf_t z = zipf_new(KEYS, 1.0);
    uint64_t rng = 7;
    size_t found = 0, found10 = 0;
    char k[32];

    assert_non_null(truth);
    assert_non_null(out);
    for (int i = 0; i < READS; i++) {
        size_t r = zipf_draw(&z, &rng);
        key_of(r, k, sizeof(k));
        uc__hot_add(h, k, strlen(k));
        truth[r]++;
    }
    /* The true top K: the ranks, up to ties at the K-th count. */
    unsigned kth = 0;
    {
        unsigned *sorted = malloc(KEYS * sizeof(unsigned));
        assert_non_null(sorted);
        memcpy(sorted, truth, KEYS * sizeof(unsigned));
        for (size_t i = 0; i < K; i++) { /* partial selection sort */
            size_t m = i;
            for (size_t j = i + 1; j < KEYS; j++) {
                if (sorted[j] > sorted[m]) {
                    m = j;
                }
            }
            unsigned t = sorted[i];
            sorted[i] = sorted[m];
            sorted[m] = t;
        }
        kth = sorted[K - 1];
        free(sorted);
    }
    assert_int_equal(uc__hot_top(h, out, K), 10 * K);
    for (size_t i = 0; i < K; i++) {
        size_t r = rank_of(out[i].key);
        assert_true(out[i].reads >= truth[r]);
        assert_true(out[i].reads - out[i].error <= truth[r]);
        found += truth[r] >= kth;
        found10 += r < 10;
    }
    print_message("zipf: %zu of the true top %d in the record's top %d "
                  "(k-th true count %u)\n",
                  found, K, K, kth);
    assert_true(found >= K * 95 / 100);
    assert_int_equal(found10, 10);
    for (size_t r = 0; r < 10; r++) {
        key_of(r, k, sizeof(k));
        assert_true(uc__hot_is_top(h, k, strlen(k), K));
        assert_true(uc__hot_is_top(h, k, strlen(k), 10 + 2));
    }
    key_of(KEYS + 1, k, sizeof(k));
    assert_false(uc__hot_is_top(h, k, strlen(k), K));
    free(z.cdf);
    free(out);
    free(truth);
    uc__hot_destroy(h);
}

/*
 * Memory: nothing but the handle before the first read; then counters,
 * index and keys, which stop growing once every counter holds a key of
 * the stream's length, however many distinct keys follow.
 */
static void memory_bounded(void **state)
{
    (void)state;
    enum { CAP = 1000 };
    uc__hot_t *h = hot_new(CAP, 1);
    size_t empty = uc__hot_bytes(h), warm, full;
    char k[220];

    assert_true(empty < 4096);
    memset(k, 'x', sizeof(k));
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof(k), "%d:", i);
        k[n] = 'x';
        uc__hot_add(h, k, 200);
    }
    warm = uc__hot_bytes(h);
    for (int i = 20000; i < 200000; i++) {
        int n = snprintf(k, sizeof(k), "%d:", i);
        k[n] = 'x';
        uc__hot_add(h, k, 200);
    }
    full = uc__hot_bytes(h);
    print_message("memory: %zu counters of 200-byte keys hold %zu bytes "
                  "(%zu per counter; %zu before the first read)\n",
                  (size_t)CAP, full, full / CAP, empty);
    assert_int_equal(full, warm);
    assert_int_equal(uc__hot_top(h, NULL, 0), CAP);
    /* counter 96 + bucket 24 + 2 index slots 16 + a 208-byte key's chunk */
    assert_true(full < (size_t)CAP * (96 + 24 + 16 + 224) + 8192);
    /* the cap is rounded up to a multiple of the shards, then bounded */
    uc__hot_t *tiny = hot_new(1, 1), *huge = hot_new(SIZE_MAX, 1);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "%d", i);
        uc__hot_add(tiny, k, strlen(k));
    }
    assert_int_equal(uc__hot_top(tiny, NULL, 0), UC__HOT_CAPACITY_MIN);
    uc__hot_add(huge, "a", 1);
    assert_true(uc__hot_bytes(huge) < (size_t)UC__HOT_CAPACITY_MAX * 100);
    uc__hot_destroy(tiny);
    uc__hot_destroy(huge);
    uc__hot_destroy(h);
}

static void halving(void **state)
{
    (void)state;
    uc__hot_t *h = hot_new(64, 1);
    uc_hot_entry_t out[4];

    add_n(h, "a", 6);
    add_n(h, "b", 5);
    add_n(h, "c", 1);
    uc__hot_halve(h);
    assert_int_equal(uc__hot_top(h, out, 4), 3);
    assert_int_equal(out[0].reads, 3);
    assert_int_equal(out[1].reads, 3); /* 6 and 5: one bucket now */
    assert_int_equal(out[2].reads, 1);
    assert_string_equal(out[2].key, "c");
    /* and counting goes on from there */
    add_n(h, "b", 1);
    assert_int_equal(uc__hot_top(h, out, 4), 3);
    assert_string_equal(out[0].key, "b");
    assert_int_equal(out[0].reads, 4);
    assert_true(uc__hot_is_top(h, "b", 1, 1));
    uc__hot_halve(h);
    uc__hot_halve(h);
    assert_int_equal(uc__hot_top(h, out, 4), 3);
    assert_int_equal(out[2].reads, 1); /* never below one */
    uc__hot_destroy(h);
}

/* One read in `sample` is counted, at random; counts are scaled back. */
static void sampling_and_mute(void **state)
{
    (void)state;
    uc__hot_t *h = hot_new(64, 10);
    uc_hot_entry_t out[2];

    assert_int_equal(uc__hot_sample(h), 8);
    for (int i = 0; i < 80000; i++) {
        uc__hot_record(h, "hot", 3);
    }
    assert_int_equal(uc__hot_top(h, out, 2), 1);
    print_message("sampling: 80000 reads estimated as %" PRIu64 "\n",
                  out[0].reads);
    assert_true(out[0].reads > 72000 && out[0].reads < 88000);
    assert_int_equal(out[0].reads % 8, 0);
    uc__hot_mute(1);
    for (int i = 0; i < 1000; i++) {
        uc__hot_record(h, "muted", 5);
    }
    uc__hot_mute(0);
    assert_int_equal(uc__hot_top(h, out, 2), 1);
    uc__hot_destroy(h);
    h = hot_new(64, 0);
    assert_int_equal(uc__hot_sample(h), 1);
    uc__hot_record(h, "one", 3);
    assert_int_equal(uc__hot_top(h, out, 2), 1);
    uc__hot_destroy(h);
}

/* Adaptive sampling: every read counted while the stream is slow, one in
 * 8 above the rate, every read again once it slows; the counts keep
 * estimating reads across both switches, and the order holds. */
static void adaptive_sampling(void **state)
{
    (void)state;
    uc__hot_t *h = hot_new(64, 8);
    uc_hot_entry_t out[2];
    const uint64_t s = 1000000; /* a second, in microseconds */

    uc__hot_adapt(h, 1000);
    assert_int_equal(uc__hot_sample(h), 1);
    assert_int_equal(uc__hot_tune(h, 10 * s), 0); /* the first call measures */
    for (int i = 0; i < 700; i++) {
        uc__hot_record(h, "a", 1);
    }
    for (int i = 0; i < 300; i++) {
        uc__hot_record(h, "b", 1);
    }
    /* exact while unsampled */
    assert_int_equal(uc__hot_top(h, out, 2), 2);
    assert_int_equal(out[0].reads, 700);
    assert_int_equal(out[1].reads, 300);
    /* 1000 reads a second is not above 1000; less than a second is not
     * measured at all */
    assert_int_equal(uc__hot_tune(h, 10 * s + s / 2), 0);
    assert_int_equal(uc__hot_tune(h, 11 * s), 0);
    assert_int_equal(uc__hot_sample(h), 1);
    /* 5000 reads in the next second: sampling starts */
    for (int i = 0; i < 5000; i++) {
        uc__hot_record(h, "a", 1);
    }
    assert_int_equal(uc__hot_tune(h, 12 * s), 1);
    assert_int_equal(uc__hot_sample(h), 8);
    assert_int_equal(uc__hot_top(h, out, 2), 2);
    assert_string_equal(out[0].key, "a");
    /* 5700 reads in sample units, rounded up, shown in reads again */
    assert_int_equal(out[0].reads, 5704);
    assert_int_equal(out[1].reads, 304);
    /* sampled from now on: 8000 reads of b estimated within 12 % (4 sd) */
    for (int i = 0; i < 8000; i++) {
        uc__hot_record(h, "b", 1);
    }
    assert_int_equal(uc__hot_top(h, out, 2), 2);
    assert_string_equal(out[0].key, "b");
    assert_true(out[0].reads > 304 + 7040 && out[0].reads < 304 + 8960);
    uint64_t b = out[0].reads;
    /* still fast: 8000 a second stays sampled */
    assert_int_equal(uc__hot_tune(h, 13 * s), 0);
    assert_int_equal(uc__hot_sample(h), 8);
    /* a quiet second: below half the rate, every read counted again, and
     * the counts are the same reads */
    assert_int_equal(uc__hot_tune(h, 14 * s), 1);
    assert_int_equal(uc__hot_sample(h), 1);
    assert_int_equal(uc__hot_top(h, out, 2), 2);
    assert_string_equal(out[0].key, "b");
    assert_int_equal(out[0].reads, b);
    assert_int_equal(out[1].reads, 5704);
    uc__hot_record(h, "a", 1);
    assert_int_equal(uc__hot_top(h, out, 2), 2);
    assert_int_equal(out[1].reads, 5705);
    /* a clock that went back starts a new measurement */
    assert_int_equal(uc__hot_tune(h, 1 * s), 0);
    uc__hot_destroy(h);

    /* 0: always sampled, never switched */
    h = hot_new(64, 8);
    uc__hot_adapt(h, 0);
    assert_int_equal(uc__hot_sample(h), 8);
    assert_int_equal(uc__hot_tune(h, s), 0);
    assert_int_equal(uc__hot_tune(h, 3 * s), 0);
    assert_int_equal(uc__hot_sample(h), 8);
    uc__hot_destroy(h);
}

static int load_one(void *arg, const char *const *fields, size_t nfields,
                    char **val, size_t *len)
{
    (void)arg;
    (void)fields;
    (void)nfields;
    *val = malloc(2);
    if (*val == NULL) {
        return UC_ENOMEM;
    }
    memcpy(*val, "v", 2);
    *len = 1;
    return UC_OK;
}

/* The library's worker measures each keyspace's read rate and switches
 * its record to sampling once reads pass hot_sample_above a second. */
static void adaptive_in_a_cache(void **state)
{
    (void)state;
    static const uc_keyspace_def_t def = {
        .name = "k", .pattern = "k:{id}", .ttl_s = 60, .loader = load_one};
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    char err[160];

    uc_config_init(&cfg);
    cfg.hot_sample_above = 100;
    cfg.log_tail_ms = 20; /* the worker's tick */
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_int_equal(uc_cache_add_keyspaces(c, &def, 1, err, sizeof(err)),
                     UC_OK);
    uc_keyspace_t *ks = uc_cache_keyspace(c, "k");
    assert_int_equal(uc__hot_sample(ks->hot), 1);
    /* Reads, far more than 100 a second, until the worker has measured a
     * second of them (bounded: 10 s). */
    uint64_t until = (uint64_t)time(NULL) + 10;
    while (uc__hot_sample(ks->hot) == 1 && (uint64_t)time(NULL) < until) {
        for (int i = 0; i < 200; i++) {
            const char *f[1] = {i % 2 ? "a" : "b"};
            uc_load_result_t r;
            assert_int_equal(uc_keyspace_get_or_load(ks, f, 1, NULL, &r),
                             UC_OK);
            uc_free(r.data);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(uc__hot_sample(ks->hot), 8);
    uc_cache_destroy(c);
}

/* ---- threads --------------------------------------------------------------
 */

enum { T_WRITERS = 4, T_READS = 50000, T_KEYS = 500 };

typedef struct {
    uc__hot_t *h;
    uint64_t seed;
    unsigned *truth; /* T_KEYS, this thread's */
    _Atomic int *stop;
    int halve;
} targ_t;

static void *writer(void *arg)
{
    targ_t *a = arg;
    zipf_t z = zipf_new(T_KEYS, 1.0);
    uint64_t rng = a->seed;
    char k[32];

    for (int i = 0; i < T_READS; i++) {
        size_t r = zipf_draw(&z, &rng);
        key_of(r, k, sizeof(k));
        uc__hot_add(a->h, k, strlen(k));
        a->truth[r]++;
    }
    free(z.cdf);
    return NULL;
}

static void *querier(void *arg)
{
    targ_t *a = arg;
    uc_hot_entry_t out[20];
    char k[32];
    unsigned n = 0;

    while (!atomic_load(a->stop)) {
        (void)uc__hot_top(a->h, out, 20);
        key_of(n % T_KEYS, k, sizeof(k));
        (void)uc__hot_is_top(a->h, k, strlen(k), 1 + n % 50);
        (void)uc__hot_bytes(a->h);
        if (a->halve && n % 64 == 0) {
            uc__hot_halve(a->h);
        }
        n++;
    }
    return NULL;
}

/* Writers and queriers at once: no count is lost (the record holds every
 * key, so counts are exact), and nothing races (TSan). */
static void threads_exact(void **state)
{
    (void)state;
    uc__hot_t *h = hot_new(4 * T_KEYS, 1);
    pthread_t w[T_WRITERS], q;
    targ_t a[T_WRITERS], qa;
    _Atomic int stop = 0;
    unsigned total[T_KEYS] = {0};
    uc_hot_entry_t *out = calloc(T_KEYS, sizeof(*out));

    assert_non_null(out);
    qa = (targ_t){h, 0, NULL, &stop, 0};
    assert_int_equal(pthread_create(&q, NULL, querier, &qa), 0);
    for (int i = 0; i < T_WRITERS; i++) {
        a[i] = (targ_t){h, (uint64_t)i * 7919 + 1,
                        calloc(T_KEYS, sizeof(unsigned)), &stop, 0};
        assert_non_null(a[i].truth);
        assert_int_equal(pthread_create(&w[i], NULL, writer, &a[i]), 0);
    }
    for (int i = 0; i < T_WRITERS; i++) {
        pthread_join(w[i], NULL);
        for (int k = 0; k < T_KEYS; k++) {
            total[k] += a[i].truth[k];
        }
        free(a[i].truth);
    }
    atomic_store(&stop, 1);
    pthread_join(q, NULL);
    size_t held = uc__hot_top(h, out, T_KEYS);
    uint64_t sum = 0;
    assert_true(held <= T_KEYS);
    for (size_t i = 0; i < held; i++) {
        assert_int_equal(out[i].reads, total[rank_of(out[i].key)]);
        assert_int_equal(out[i].error, 0);
        sum += out[i].reads;
    }
    assert_int_equal(sum, (uint64_t)T_WRITERS * T_READS);
    free(out);
    uc__hot_destroy(h);
}

/* The same with a record too small for the keys, halved meanwhile, and
 * sampled recording: only the structure is checked afterwards. */
static void threads_evicting(void **state)
{
    (void)state;
    uc__hot_t *h = hot_new(64, 2);
    pthread_t w[T_WRITERS], q;
    targ_t a[T_WRITERS], qa;
    _Atomic int stop = 0;
    uc_hot_entry_t out[128];

    qa = (targ_t){h, 0, NULL, &stop, 1};
    assert_int_equal(pthread_create(&q, NULL, querier, &qa), 0);
    for (int i = 0; i < T_WRITERS; i++) {
        a[i] = (targ_t){h, (uint64_t)i * 104729 + 3,
                        calloc(T_KEYS, sizeof(unsigned)), &stop, 0};
        assert_non_null(a[i].truth);
        assert_int_equal(pthread_create(&w[i], NULL, writer, &a[i]), 0);
    }
    for (int i = 0; i < T_WRITERS; i++) {
        pthread_join(w[i], NULL);
        free(a[i].truth);
    }
    atomic_store(&stop, 1);
    pthread_join(q, NULL);
    size_t held = uc__hot_top(h, out, 128);
    assert_int_equal(held, 64);
    for (size_t i = 1; i < held; i++) {
        assert_true(lower(&out[i]) <= lower(&out[i - 1]));
        assert_true(out[i].reads > 0);
    }
    uc__hot_destroy(h);
}

/* ---- cost ------------------------------------------------------------------
 */

typedef struct {
    uc__hot_t *h;
    char (*keys)[32];
    uint32_t *seq;
    size_t nseq;
    double ns;
} barg_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *bench_thread(void *arg)
{
    barg_t *b = arg;
    enum { ROUNDS = 4 };
    uint64_t t0 = now_ns();

    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < b->nseq; i++) {
            const char *k = b->keys[b->seq[i]];
            uc__hot_record(b->h, k, strlen(k));
        }
    }
    b->ns = (double)(now_ns() - t0) / (double)(ROUNDS * b->nseq);
    return NULL;
}

/*
 * What recording costs a read, on a Zipf sequence of 10^4 web-api-shaped
 * keys, from 1 and 2 threads, sampled (8, the default) and unsampled.
 * Printed, not judged: the sanitizers make the figure several times
 * larger than in a release build (see docs/library.md, Warming).
 */
static void record_cost(void **state)
{
    (void)state;
    enum { NKEYS = 10000, NSEQ = 1 << 18 };
    char(*keys)[32] = calloc(NKEYS, sizeof(*keys));
    uint32_t *seq = calloc(NSEQ, sizeof(uint32_t));
    zipf_t z = zipf_new(NKEYS, 0.99);
    uint64_t rng = 99;
    static const unsigned samples[] = {8, 1};

    assert_non_null(keys);
    assert_non_null(seq);
    for (size_t i = 0; i < NKEYS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "feedback:stats:%08zx-4e1d", i);
    }
    for (size_t i = 0; i < NSEQ; i++) {
        seq[i] = (uint32_t)zipf_draw(&z, &rng);
    }
    for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
        for (int nt = 1; nt <= 2; nt++) {
            uc__hot_t *h = hot_new(10000, samples[s]);
            pthread_t t[2];
            barg_t b[2];
            for (int i = 0; i < nt; i++) {
                b[i] = (barg_t){h, keys, seq, NSEQ, 0};
                assert_int_equal(
                    pthread_create(&t[i], NULL, bench_thread, &b[i]), 0);
            }
            double sum = 0;
            for (int i = 0; i < nt; i++) {
                pthread_join(t[i], NULL);
                sum += b[i].ns;
            }
            print_message("record cost: sample 1/%u, %d thread(s): %.1f ns a "
                          "read\n",
                          samples[s], nt, sum / nt);
            uc__hot_destroy(h);
        }
    }
    free(z.cdf);
    free(seq);
    free(keys);
}

/* ---- keys back into fields ------------------------------------------------
 */

static void keys_parse_back(void **state)
{
    (void)state;
    static const uc_keyspace_def_t defs[] = {
        {.name = "one", .pattern = "feedback:stats:{id}", .ttl_s = 60},
        {.name = "five",
         .pattern = "metrics:{s}:{t}:agg:{iv}:{a}:{b}",
         .ttl_s = 60},
    };
    static const struct {
        int ks;
        const char *fields[5];
    } ok[] = {
        {0, {"abc"}},
        {0, {"a:b*c d%e"}},
        {0, {"\xc3\xa9t\xc3\xa9"}},
        {0, {"100%"}},
        {1, {"web-api", "latency_ms", "hour", "-5", "1700000000"}},
        {1, {"a b", "x:y", "[z]", "?", "%41"}},
    };
    static const struct {
        int ks;
        const char *key;
    } bad[] = {
        {0, "feedback:stats:"},     /* empty field */
        {0, "feedback:stats:a:b"},  /* another shape */
        {0, "feedback:stat:abc"},   /* another literal */
        {0, "feedback:stats:%4"},   /* short escape */
        {0, "feedback:stats:%zz"},  /* not hex */
        {0, "feedback:stats:%41"},  /* 'A' is never escaped */
        {0, "feedback:stats:%3a"},  /* lower-case hex is never written */
        {0, "feedback:stats:%0A"},  /* a control byte is refused */
        {1, "metrics:a:b:agg:c:d"}, /* a field short */
        {1, "metrics:a:b:recent:c:d:e"},
    };
    uc_config_t cfg = UC_CONFIG_INIT;
    uc_cache_t *c = NULL;
    char err[128];

    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_int_equal(uc_cache_add_keyspaces(c, defs, 2, err, sizeof(err)),
                     UC_OK);
    uc_keyspace_t *ks[2] = {uc_cache_keyspace(c, "one"),
                            uc_cache_keyspace(c, "five")};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uc_keyspace_t *k = ks[ok[i].ks];
        size_t n = uc_keyspace_nfields(k), klen;
        char key[UC_KEY_MAX + 1], buf[UC_KEY_MAX + 16];
        const char *got[UC_KEYSPACE_FIELDS_MAX];
        assert_int_equal(
            uc_keyspace_key(k, ok[i].fields, n, key, sizeof(key), &klen),
            UC_OK);
        assert_int_equal(
            uc__keyspace_parse(k, key, klen, buf, klen + n + 1, got), UC_OK);
        for (size_t f = 0; f < n; f++) {
            assert_string_equal(got[f], ok[i].fields[f]);
        }
        /* one byte short of the bound */
        assert_int_equal(uc__keyspace_parse(k, key, klen, buf, 2, got),
                         UC_ETOOBIG);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[UC_KEY_MAX];
        const char *got[UC_KEYSPACE_FIELDS_MAX];
        assert_int_equal(uc__keyspace_parse(ks[bad[i].ks], bad[i].key,
                                            strlen(bad[i].key), buf,
                                            sizeof(buf), got),
                         UC_EINVAL);
    }
    /* The public face of a keyspace's record. */
    uc_hot_entry_t top[4];
    assert_int_equal(uc_keyspace_hot(ks[0], top, 4), 0);
    assert_true(uc_keyspace_hot_bytes(ks[0]) > 0);
    assert_int_equal(uc_keyspace_hot(NULL, top, 4), 0);
    assert_int_equal(uc_keyspace_hot_bytes(NULL), 0);
    /* No loader on these keyspaces: nothing to warm. */
    assert_int_equal(uc_cache_warm(c), UC_ENOTSUP);
    uc_cache_destroy(c);
}

/* ---- settings -------------------------------------------------------------
 */

static const char *lookup(void *arg, const char *name)
{
    const char *const *kv = arg;
    for (; kv[0] != NULL; kv += 2) {
        if (strcmp(kv[0], name) == 0) {
            return kv[1];
        }
    }
    return NULL;
}

static void settings(void **state)
{
    (void)state;
    const char *off[] = {"UTXOCACHE_WARM_TOP",
                         "0",
                         "UTXOCACHE_HOT_CAPACITY",
                         "0",
                         "UTXOCACHE_WARM_RATE",
                         "5",
                         "UTXOCACHE_HOT_SAMPLE",
                         "1",
                         "UTXOCACHE_HOT_SAMPLE_ABOVE",
                         "0",
                         NULL};
    const char *bad[][2] = {{"UTXOCACHE_WARM_TOP", "65537"},
                            {"UTXOCACHE_WARM_TOP", "-1"},
                            {"UTXOCACHE_WARM_RATE", "0"},
                            {"UTXOCACHE_HOT_SAMPLE", "x"},
                            {"UTXOCACHE_HOT_CAPACITY", "262145"},
                            {"UTXOCACHE_HOT_SAMPLE_ABOVE", "-5"}};
    uc_config_t cfg;
    char err[160];
    uc_cache_t *c = NULL;

    uc_config_init(&cfg);
    assert_int_equal(uc_config_from_lookup(&cfg, lookup, (void *)off, NULL, 0,
                                           err, sizeof(err)),
                     UC_OK);
    assert_int_equal(cfg.warm_top, -1);
    assert_int_equal(cfg.hot_capacity, -1);
    assert_int_equal(cfg.warm_rate, 5);
    assert_int_equal(cfg.hot_sample, 1);
    assert_int_equal(cfg.hot_sample_above, -1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *kv[] = {bad[i][0], bad[i][1], NULL};
        uc_config_init(&cfg);
        assert_int_equal(uc_config_from_lookup(&cfg, lookup, (void *)kv, NULL,
                                               0, err, sizeof(err)),
                         UC_ECONFIG);
        assert_non_null(strstr(err, bad[i][0]));
    }
    /* Defaults: 1000 warmed, 100 a second, 10 counters each, 1 in 8. */
    uc_config_init(&cfg);
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_int_equal(c->env.cfg.warm_top, 1000);
    assert_int_equal(c->env.cfg.warm_rate, 100);
    assert_int_equal(c->env.cfg.hot_capacity, 10000);
    assert_int_equal(c->env.cfg.hot_sample, 8);
    assert_int_equal(c->env.cfg.hot_sample_above, 20000);
    uc_cache_destroy(c);
    uc_config_init(&cfg);
    cfg.warm_top = 50;
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_int_equal(c->env.cfg.hot_capacity, 1024);
    uc_cache_destroy(c);
    /* No record: get-or-load still works, and nothing is known. */
    static const uc_keyspace_def_t def = {
        .name = "k", .pattern = "k:{id}", .ttl_s = 60};
    /* A keyspace's record counts every read until its rate passes
     * hot_sample_above; negative: it samples from the start. */
    for (int adaptive = 1; adaptive >= 0; adaptive--) {
        uc_config_init(&cfg);
        cfg.hot_sample_above = adaptive ? 0 : -1;
        assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
        assert_int_equal(uc_cache_add_keyspaces(c, &def, 1, err, sizeof(err)),
                         UC_OK);
        assert_int_equal(uc__hot_sample(uc_cache_keyspace(c, "k")->hot),
                         adaptive ? 1 : 8);
        uc_cache_destroy(c);
    }
    uc_config_init(&cfg);
    cfg.hot_capacity = -1;
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_int_equal(uc_cache_add_keyspaces(c, &def, 1, err, sizeof(err)),
                     UC_OK);
    assert_null(uc_cache_keyspace(c, "k")->hot);
    assert_int_equal(uc_keyspace_hot(uc_cache_keyspace(c, "k"), NULL, 0), 0);
    assert_int_equal(uc_keyspace_hot_bytes(uc_cache_keyspace(c, "k")), 0);
    uc_cache_destroy(c);
    cfg.hot_sample = -1;
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_ECONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exact_small_stream),
        cmocka_unit_test(key_lengths),
        cmocka_unit_test(space_saving_bounds),
        cmocka_unit_test(zipf_top_k),
        cmocka_unit_test(memory_bounded),
        cmocka_unit_test(halving),
        cmocka_unit_test(sampling_and_mute),
        cmocka_unit_test(threads_exact),
        cmocka_unit_test(threads_evicting),
        cmocka_unit_test(record_cost),
        cmocka_unit_test(keys_parse_back),
        cmocka_unit_test(settings),
        cmocka_unit_test(adaptive_sampling),
        cmocka_unit_test(adaptive_in_a_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
