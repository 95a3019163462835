/* SPDX-License-Identifier: MIT */
/*
 * uc-policy-sim: replays synthetic request traces through the eviction and
 * admission policies considered for the in-process near cache (LRU,
 * S3-FIFO, W-TinyLFU, SIEVE), every one held to the same byte budget, and
 * prints their object and byte hit ratios side by side. Traces come from
 * fixed seeds (xoshiro256**, Zipf ranks by rejection-inversion), so every
 * run prints the same ratios; only the replay rates depend on the machine.
 * It needs nothing beyond libc and libm, and every structure is bounded by
 * the trace and budget sizes it is given. `--self-test` holds each policy
 * to its invariants and, request by request, to a naive reference
 * implementation written separately from the fast one.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NIL UINT32_MAX
#define N_POLICIES 4
#define N_BUDGETS 3
#define MAX_ROWS 32

/* Object sizes: one size for the uniform traces, a clipped log-normal
 * (median 1000 B) for the variable-size trace. */
#define UNIFORM_SIZE 1024u
#define VAR_MIN 100u
#define VAR_MAX 16384u
#define VAR_MU 6.907755278982137 /* ln(1000) */
#define VAR_SIGMA 1.0

#define TWO_PI 6.283185307179586

static const unsigned budget_pct[N_BUDGETS] = {1, 5, 10};

/* ---- plumbing -------------------------------------------------------- */

/* A bug in the simulator, not bad input: stop before printing numbers
 * that a broken policy produced. */
static _Noreturn void bug(const char *what)
{
    fprintf(stderr, "uc-policy-sim: internal error: %s\n", what);
    abort();
}

/* Every allocation is sized up front from the trace and the budget; if one
 * fails, the run stops rather than measuring something smaller. */
static void *xcalloc(uint64_t n, size_t size)
{
    void *p;

    if (n == 0) {
        n = 1;
    }
    if (n > SIZE_MAX / size) {
        fprintf(stderr,
                "uc-policy-sim: allocation of %llu x %zu bytes "
                "overflows\n",
                (unsigned long long)n, size);
        exit(1);
    }
    p = calloc((size_t)n, size);
    if (p == NULL) {
        fprintf(stderr, "uc-policy-sim: out of memory (%llu x %zu bytes)\n",
                (unsigned long long)n, size);
        exit(1);
    }
    return p;
}

static double now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t ceil_pow2(uint64_t v)
{
    uint64_t p = 1;

    while (p < v) {
        p <<= 1;
    }
    return p;
}

/* ---- deterministic randomness ---------------------------------------- */

/*
 * splitmix64's output function: a bijection on 64 bits with full
 * avalanche. It seeds xoshiro and serves as the hash of a key id, so
 * sequential ids (scans) spread over the hash table like any others.
 */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t s[4];
} rng_t;

static void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed += 0x9e3779b97f4a7c15ULL;
        r->s[i] = mix64(seed);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna). */
static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n), by a 32x32 multiply-shift (bias below 2^-32 n). */
static uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* ---- Zipf sampler ---------------------------------------------------- */

/*
 * Rejection-inversion (Hormann and Derflinger, 1996), the sampler of
 * Apache Commons RNG: O(1) memory and expected O(1) time for any n and any
 * exponent s > 0, where a precomputed CDF over 10^6 ranks would cost 8 MB
 * per trace and a binary search per request.
 *
 * How it works: h(x) = x^-s is the unnormalised density of rank x, H its
 * integral. A point u drawn uniformly from [H(n + 1/2), H(3/2) - 1] maps
 * through H^-1 to x, rounded to rank k. Since H(k + 1/2) - H(k - 1/2)
 * bounds h(k) from above, accepting when u >= H(k + 1/2) - h(k) gives
 * rank k with probability proportional to h(k); the squeeze `k - x <= sq`
 * accepts most draws without evaluating H. helper1/helper2 are log1p(x)/x
 * and expm1(x)/x with series near 0, so s = 1 needs no special case.
 */
typedef struct {
    double s;
    double n;
    double h_x1;
    double h_n;
    double sq;
} zipf_t;

static double zipf_helper1(double x)
{
    if (fabs(x) > 1e-8) {
        return log1p(x) / x;
    }
    return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static double zipf_helper2(double x)
{
    if (fabs(x) > 1e-8) {
        return expm1(x) / x;
    }
    return 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}

static double zipf_h(const zipf_t *z, double x)
{
    return exp(-z->s * log(x));
}

static double zipf_H(const zipf_t *z, double x)
{
    double lx = log(x);

    return zipf_helper2((1.0 - z->s) * lx) * lx;
}

static double zipf_Hinv(const zipf_t *z, double x)
{
    double t = x * (1.0 - z->s);

    if (t < -1.0) {
        t = -1.0;
    }
    return exp(zipf_helper1(t) * x);
}

static void zipf_init(zipf_t *z, double s, uint32_t n)
{
    z->s = s;
    z->n = (double)n;
    z->h_x1 = zipf_H(z, 1.5) - 1.0;
    z->h_n = zipf_H(z, z->n + 0.5);
    z->sq = 2.0 - zipf_Hinv(z, zipf_H(z, 2.5) - zipf_h(z, 2.0));
}

/* Returns a rank in [1, n]; rank 1 is the most popular. */
static uint32_t zipf_next(const zipf_t *z, rng_t *r)
{
    for (;;) {
        double u = z->h_n + rng_unit(r) * (z->h_x1 - z->h_n);
        double x = zipf_Hinv(z, u);
        double k = floor(x + 0.5);

        if (k < 1.0) {
            k = 1.0;
        } else if (k > z->n) {
            k = z->n;
        }
        if (k - x <= z->sq || u >= zipf_H(z, k + 0.5) - zipf_h(z, k)) {
            return (uint32_t)k;
        }
    }
}

/* ---- key index: open addressing ------------------------------------- */

/*
 * Key id to node index, linear probing, load kept at or under one half by
 * doubling. Deletion shifts later entries of the probe run back (Knuth's
 * Algorithm R) instead of leaving tombstones, so a table that sees
 * millions of evictions never degrades. Key NIL marks an empty slot.
 */
typedef struct {
    uint32_t key;
    uint32_t val;
} slot_t;

typedef struct {
    slot_t *slots;
    uint32_t mask;
    uint32_t count;
} map_t;

static void map_alloc(map_t *m, uint64_t cap)
{
    if (cap > ((uint64_t)1 << 31)) {
        bug("key index larger than 2^31 slots");
    }
    m->slots = xcalloc(cap, sizeof(*m->slots));
    for (uint64_t i = 0; i < cap; i++) {
        m->slots[i].key = NIL;
    }
    m->mask = (uint32_t)(cap - 1);
}

static void map_init(map_t *m, uint64_t expected)
{
    uint64_t cap = ceil_pow2(expected * 2);

    map_alloc(m, cap < 16 ? 16 : cap);
    m->count = 0;
}

static void map_release(map_t *m)
{
    free(m->slots);
    m->slots = NULL;
}

static uint32_t map_home(const map_t *m, uint32_t key)
{
    return (uint32_t)mix64(key) & m->mask;
}

static uint32_t map_get(const map_t *m, uint32_t key)
{
    uint32_t i = map_home(m, key);

    while (m->slots[i].key != NIL) {
        if (m->slots[i].key == key) {
            return m->slots[i].val;
        }
        i = (i + 1) & m->mask;
    }
    return NIL;
}

static void map_place(map_t *m, uint32_t key, uint32_t val)
{
    uint32_t i = map_home(m, key);

    while (m->slots[i].key != NIL) {
        if (m->slots[i].key == key) {
            bug("key index: key inserted twice");
        }
        i = (i + 1) & m->mask;
    }
    m->slots[i].key = key;
    m->slots[i].val = val;
    m->count++;
}

/* key must be absent. */
static void map_put(map_t *m, uint32_t key, uint32_t val)
{
    if (((uint64_t)m->count + 1) * 2 > (uint64_t)m->mask + 1) {
        slot_t *old = m->slots;
        uint64_t old_cap = (uint64_t)m->mask + 1;

        map_alloc(m, old_cap * 2);
        m->count = 0;
        for (uint64_t i = 0; i < old_cap; i++) {
            if (old[i].key != NIL) {
                map_place(m, old[i].key, old[i].val);
            }
        }
        free(old);
    }
    map_place(m, key, val);
}

/* key must be present. */
static void map_del(map_t *m, uint32_t key)
{
    uint32_t i = map_home(m, key);
    uint32_t j;

    while (m->slots[i].key != key) {
        if (m->slots[i].key == NIL) {
            bug("key index: deleting an absent key");
        }
        i = (i + 1) & m->mask;
    }
    j = i;
    for (;;) {
        uint32_t k;

        j = (j + 1) & m->mask;
        if (m->slots[j].key == NIL) {
            break;
        }
        k = map_home(m, m->slots[j].key);
        /* The entry at j may fill the hole at i unless its home lies
         * cyclically in (i, j]: then a lookup would no longer reach it. */
        if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NIL;
    m->count--;
}

/* ---- nodes and lists ------------------------------------------------- */

/*
 * One node per resident object (and per S3-FIFO ghost). The simulator
 * uses one layout for every policy; which fields a policy actually needs
 * is documented with the policy and in docs/benchmarks.md.
 */
typedef struct {
    uint32_t key;
    uint32_t size;
    uint32_t prev;
    uint32_t next;
    uint8_t q;    /* which queue holds it */
    uint8_t freq; /* S3-FIFO counter, SIEVE visited bit */
} node_t;

/* Nodes come from the free list, else from the never-used part of the
 * array, so a pool sized for the worst case (every object the smallest)
 * only touches the memory it uses. */
typedef struct {
    node_t *n;
    uint32_t cap;
    uint32_t high;
    uint32_t free_head;
    uint32_t used;
} pool_t;

static void pool_init(pool_t *p, uint64_t cap)
{
    if (cap >= NIL) {
        bug("node pool larger than 2^32 nodes");
    }
    p->n = xcalloc(cap, sizeof(*p->n));
    p->cap = (uint32_t)cap;
    p->high = 0;
    p->free_head = NIL;
    p->used = 0;
}

static void pool_release(pool_t *p)
{
    free(p->n);
    p->n = NULL;
}

static uint32_t pool_alloc(pool_t *p, uint32_t key, uint32_t size)
{
    uint32_t i;

    if (p->free_head != NIL) {
        i = p->free_head;
        p->free_head = p->n[i].next;
    } else if (p->high < p->cap) {
        i = p->high++;
    } else {
        bug("node pool exhausted: the budget bound is wrong");
    }
    p->n[i].key = key;
    p->n[i].size = size;
    p->n[i].prev = NIL;
    p->n[i].next = NIL;
    p->n[i].q = 0;
    p->n[i].freq = 0;
    p->used++;
    return i;
}

static void pool_free(pool_t *p, uint32_t i)
{
    p->n[i].key = NIL;
    p->n[i].next = p->free_head;
    p->free_head = i;
    p->used--;
}

/* head is the oldest (or least recently used) end, tail the newest. */
typedef struct {
    uint32_t head;
    uint32_t tail;
    uint32_t len;
    uint64_t bytes;
} list_t;

static void list_init(list_t *l)
{
    l->head = NIL;
    l->tail = NIL;
    l->len = 0;
    l->bytes = 0;
}

static void list_push(node_t *n, list_t *l, uint32_t i)
{
    n[i].prev = l->tail;
    n[i].next = NIL;
    if (l->tail != NIL) {
        n[l->tail].next = i;
    } else {
        l->head = i;
    }
    l->tail = i;
    l->len++;
    l->bytes += n[i].size;
}

static void list_unlink(node_t *n, list_t *l, uint32_t i)
{
    if (n[i].prev != NIL) {
        n[n[i].prev].next = n[i].next;
    } else {
        l->head = n[i].next;
    }
    if (n[i].next != NIL) {
        n[n[i].next].prev = n[i].prev;
    } else {
        l->tail = n[i].prev;
    }
    l->len--;
    l->bytes -= n[i].size;
}

/* Singly linked FIFO (S3-FIFO's queues): only next is kept, because these
 * queues are only ever pushed at the tail and popped at the head. */
static void fifo_push(node_t *n, list_t *l, uint32_t i)
{
    n[i].next = NIL;
    if (l->tail != NIL) {
        n[l->tail].next = i;
    } else {
        l->head = i;
    }
    l->tail = i;
    l->len++;
    l->bytes += n[i].size;
}

static uint32_t fifo_pop(node_t *n, list_t *l)
{
    uint32_t i = l->head;

    l->head = n[i].next;
    if (l->head == NIL) {
        l->tail = NIL;
    }
    l->len--;
    l->bytes -= n[i].size;
    return i;
}

/*
 * Walks l from its head. Returns 0 when every node carries tag q, the
 * links agree both ways (prev only when doubly), m maps every key back to
 * its node (m may be NULL), and the length and byte count match; else -1
 * with the first discrepancy in why.
 */
static int list_check(const node_t *n, const list_t *l, const map_t *m,
                      uint8_t q, bool doubly, char *why, size_t len)
{
    uint32_t count = 0;
    uint32_t prev = NIL;
    uint64_t bytes = 0;

    for (uint32_t i = l->head; i != NIL; i = n[i].next) {
        if (count >= l->len) {
            snprintf(why, len, "queue %u longer than its length %u", q, l->len);
            return -1;
        }
        if (n[i].q != q) {
            snprintf(why, len, "node of key %u tagged %u in queue %u", n[i].key,
                     n[i].q, q);
            return -1;
        }
        if (doubly && n[i].prev != prev) {
            snprintf(why, len, "queue %u: back link of key %u broken", q,
                     n[i].key);
            return -1;
        }
        if (m != NULL && map_get(m, n[i].key) != i) {
            snprintf(why, len, "queue %u: index does not map key %u to it", q,
                     n[i].key);
            return -1;
        }
        bytes += n[i].size;
        count++;
        prev = i;
    }
    if (l->tail != prev) {
        snprintf(why, len, "queue %u: tail is not the last node", q);
        return -1;
    }
    if (count != l->len || bytes != l->bytes) {
        snprintf(why, len,
                 "queue %u records %u objects, %llu bytes; holds %u, %llu", q,
                 l->len, (unsigned long long)l->bytes, count,
                 (unsigned long long)bytes);
        return -1;
    }
    return 0;
}

/* ---- policies -------------------------------------------------------- */

/* What a policy is built for. */
typedef struct {
    uint64_t budget;           /* bytes */
    uint64_t max_entries;      /* most objects resident at once, + 1 */
    uint32_t expected_entries; /* budget / mean object size */
} pcfg_t;

/*
 * A policy: create from a configuration, then access(key, size) once per
 * request, which returns whether it was a hit and, on a miss, admits the
 * object (or not) and evicts until the bytes held fit the budget. held()
 * is the bytes resident; check() walks every structure and returns 0, or
 * -1 with the first broken invariant in why.
 */
typedef struct {
    const char *name;
    void *(*create)(const pcfg_t *cfg);
    bool (*access)(void *p, uint32_t key, uint32_t size);
    uint64_t (*held)(const void *p);
    int (*check)(const void *p, char *why, size_t len);
    void (*destroy)(void *p);
} policy_ops_t;

/* ---- LRU ---- */

typedef struct {
    uint64_t budget;
    pool_t pool;
    map_t map;
    list_t q; /* head: least recently used */
} lru_t;

static void *lru_create(const pcfg_t *cfg)
{
    lru_t *c = xcalloc(1, sizeof(*c));

    c->budget = cfg->budget;
    pool_init(&c->pool, cfg->max_entries + 1);
    map_init(&c->map, cfg->expected_entries);
    list_init(&c->q);
    return c;
}

static bool lru_access(void *p, uint32_t key, uint32_t size)
{
    lru_t *c = p;
    node_t *n = c->pool.n;
    uint32_t i = map_get(&c->map, key);

    if (i != NIL) {
        list_unlink(n, &c->q, i);
        list_push(n, &c->q, i);
        return true;
    }
    if (size > c->budget) {
        return false;
    }
    while (c->q.bytes + size > c->budget) {
        uint32_t v = c->q.head;

        list_unlink(n, &c->q, v);
        map_del(&c->map, n[v].key);
        pool_free(&c->pool, v);
    }
    i = pool_alloc(&c->pool, key, size);
    list_push(n, &c->q, i);
    map_put(&c->map, key, i);
    return false;
}

static uint64_t lru_held(const void *p)
{
    const lru_t *c = p;

    return c->q.bytes;
}

static int lru_check(const void *p, char *why, size_t len)
{
    const lru_t *c = p;

    if (list_check(c->pool.n, &c->q, &c->map, 0, true, why, len) != 0) {
        return -1;
    }
    if (c->map.count != c->q.len || c->pool.used != c->q.len) {
        snprintf(why, len, "index %u, pool %u, queue %u objects", c->map.count,
                 c->pool.used, c->q.len);
        return -1;
    }
    return 0;
}

static void lru_destroy(void *p)
{
    lru_t *c = p;

    pool_release(&c->pool);
    map_release(&c->map);
    free(c);
}

/* ---- SIEVE ---- */

/*
 * SIEVE (Zhang et al., NSDI '24): one FIFO queue and a visited bit. A hit
 * only sets the bit. To evict, a hand walks from the oldest object towards
 * the newest, clearing bits, and evicts the first object whose bit is
 * clear; the hand stays where it stopped, so survivors keep their place
 * in the queue (no reinsertion). The eviction can remove from the middle
 * of the queue, hence a doubly linked one.
 */
typedef struct {
    uint64_t budget;
    pool_t pool;
    map_t map;
    list_t q;      /* head: oldest */
    uint32_t hand; /* next node to examine; NIL: start at the oldest */
} sieve_t;

static void *sieve_create(const pcfg_t *cfg)
{
    sieve_t *c = xcalloc(1, sizeof(*c));

    c->budget = cfg->budget;
    pool_init(&c->pool, cfg->max_entries + 1);
    map_init(&c->map, cfg->expected_entries);
    list_init(&c->q);
    c->hand = NIL;
    return c;
}

static void sieve_evict(sieve_t *c)
{
    node_t *n = c->pool.n;
    uint32_t o = c->hand != NIL ? c->hand : c->q.head;

    while (n[o].freq != 0) {
        n[o].freq = 0;
        o = n[o].next != NIL ? n[o].next : c->q.head;
    }
    c->hand = n[o].next;
    list_unlink(n, &c->q, o);
    map_del(&c->map, n[o].key);
    pool_free(&c->pool, o);
}

static bool sieve_access(void *p, uint32_t key, uint32_t size)
{
    sieve_t *c = p;
    uint32_t i = map_get(&c->map, key);

    if (i != NIL) {
        c->pool.n[i].freq = 1;
        return true;
    }
    if (size > c->budget) {
        return false;
    }
    while (c->q.bytes + size > c->budget) {
        sieve_evict(c);
    }
    i = pool_alloc(&c->pool, key, size);
    list_push(c->pool.n, &c->q, i);
    map_put(&c->map, key, i);
    return false;
}

static uint64_t sieve_held(const void *p)
{
    const sieve_t *c = p;

    return c->q.bytes;
}

static int sieve_check(const void *p, char *why, size_t len)
{
    const sieve_t *c = p;
    bool hand_found = c->hand == NIL;

    if (list_check(c->pool.n, &c->q, &c->map, 0, true, why, len) != 0) {
        return -1;
    }
    for (uint32_t i = c->q.head; i != NIL; i = c->pool.n[i].next) {
        if (i == c->hand) {
            hand_found = true;
        }
        if (c->pool.n[i].freq > 1) {
            snprintf(why, len, "visited bit of key %u is %u", c->pool.n[i].key,
                     c->pool.n[i].freq);
            return -1;
        }
    }
    if (!hand_found) {
        snprintf(why, len, "hand points outside the queue");
        return -1;
    }
    if (c->map.count != c->q.len || c->pool.used != c->q.len) {
        snprintf(why, len, "index %u, pool %u, queue %u objects", c->map.count,
                 c->pool.used, c->q.len);
        return -1;
    }
    return 0;
}

static void sieve_destroy(void *p)
{
    sieve_t *c = p;

    pool_release(&c->pool);
    map_release(&c->map);
    free(c);
}

/* ---- S3-FIFO ---- */

/*
 * S3-FIFO (Yang et al., SOSP '23), as in its authors' original code
 * (libCacheSim S3FIFOv0): a small FIFO S (10 % of the budget), a main FIFO
 * M (90 %) and a ghost FIFO G of key ids whose objects add up to at most
 * M's budget. A hit raises a 2-bit counter (saturating at 3). A miss goes
 * to M if the key is in G (and leaves G), else to S. While the objects do
 * not fit, one object is evicted: from M if M is over its share or S is
 * empty, else from S. Evicting from S pops its oldest: counter >= 2 moves
 * it to M with the counter cleared (and pops on), else it goes to G and
 * the eviction is done. Evicting from M pops its oldest: a counter above
 * 0 is decremented and the object reinserted at the tail, else it leaves.
 * Like the authors' code, S3-FIFO does not admit an object of S's size or
 * more. S and M only push and pop, so they are singly linked; G loses
 * entries from the middle on a ghost hit, so it is doubly linked.
 */
enum { S3_SMALL = 0, S3_MAIN = 1, S3_GHOST = 2 };

typedef struct {
    uint64_t budget;
    uint64_t small_cap;
    uint64_t main_cap;
    pool_t pool;
    map_t map;
    list_t small;
    list_t main;
    pool_t gpool;
    map_t gmap;
    list_t ghost;
} s3_t;

static void *s3_create(const pcfg_t *cfg)
{
    s3_t *c = xcalloc(1, sizeof(*c));

    c->budget = cfg->budget;
    c->small_cap = (uint64_t)((double)cfg->budget * 0.10);
    c->main_cap = cfg->budget - c->small_cap;
    pool_init(&c->pool, cfg->max_entries + 1);
    map_init(&c->map, cfg->expected_entries);
    list_init(&c->small);
    list_init(&c->main);
    /* The ghost tracks at most main_cap bytes of objects: no more entries
     * than the cache itself holds. */
    pool_init(&c->gpool, cfg->max_entries + 1);
    map_init(&c->gmap, cfg->expected_entries);
    list_init(&c->ghost);
    return c;
}

static void s3_ghost_drop(s3_t *c, uint32_t g)
{
    list_unlink(c->gpool.n, &c->ghost, g);
    map_del(&c->gmap, c->gpool.n[g].key);
    pool_free(&c->gpool, g);
}

static void s3_ghost_add(s3_t *c, uint32_t key, uint32_t size)
{
    uint32_t g;

    while (c->ghost.len > 0 && c->ghost.bytes + size > c->main_cap) {
        s3_ghost_drop(c, c->ghost.head);
    }
    if (size > c->main_cap) {
        return;
    }
    g = pool_alloc(&c->gpool, key, size);
    c->gpool.n[g].q = S3_GHOST;
    list_push(c->gpool.n, &c->ghost, g);
    map_put(&c->gmap, key, g);
}

static void s3_evict_small(s3_t *c)
{
    node_t *n = c->pool.n;

    while (c->small.len > 0) {
        uint32_t t = fifo_pop(n, &c->small);

        if (n[t].freq >= 2) {
            n[t].freq = 0;
            n[t].q = S3_MAIN;
            fifo_push(n, &c->main, t);
        } else {
            s3_ghost_add(c, n[t].key, n[t].size);
            map_del(&c->map, n[t].key);
            pool_free(&c->pool, t);
            return;
        }
    }
}

static void s3_evict_main(s3_t *c)
{
    node_t *n = c->pool.n;

    while (c->main.len > 0) {
        uint32_t t = fifo_pop(n, &c->main);

        if (n[t].freq > 0) {
            n[t].freq--;
            fifo_push(n, &c->main, t);
        } else {
            map_del(&c->map, n[t].key);
            pool_free(&c->pool, t);
            return;
        }
    }
}

static bool s3_access(void *p, uint32_t key, uint32_t size)
{
    s3_t *c = p;
    node_t *n = c->pool.n;
    uint32_t i = map_get(&c->map, key);
    uint32_t g;

    if (i != NIL) {
        if (n[i].freq < 3) {
            n[i].freq++;
        }
        return true;
    }
    if (size >= c->small_cap) {
        return false;
    }
    g = map_get(&c->gmap, key);
    if (g != NIL) {
        s3_ghost_drop(c, g);
    }
    while (c->small.bytes + c->main.bytes + size > c->budget) {
        if (c->main.bytes > c->main_cap || c->small.len == 0) {
            s3_evict_main(c);
        } else {
            s3_evict_small(c);
        }
    }
    i = pool_alloc(&c->pool, key, size);
    if (g != NIL) {
        n[i].q = S3_MAIN;
        fifo_push(n, &c->main, i);
    } else {
        n[i].q = S3_SMALL;
        fifo_push(n, &c->small, i);
    }
    map_put(&c->map, key, i);
    return false;
}

static uint64_t s3_held(const void *p)
{
    const s3_t *c = p;

    return c->small.bytes + c->main.bytes;
}

static int s3_check(const void *p, char *why, size_t len)
{
    const s3_t *c = p;
    const node_t *n = c->pool.n;

    if (list_check(n, &c->small, &c->map, S3_SMALL, false, why, len) != 0 ||
        list_check(n, &c->main, &c->map, S3_MAIN, false, why, len) != 0 ||
        list_check(c->gpool.n, &c->ghost, &c->gmap, S3_GHOST, true, why, len) !=
            0) {
        return -1;
    }
    for (uint32_t i = c->small.head; i != NIL; i = n[i].next) {
        if (n[i].freq > 3) {
            snprintf(why, len, "counter of key %u is %u", n[i].key, n[i].freq);
            return -1;
        }
    }
    for (uint32_t i = c->main.head; i != NIL; i = n[i].next) {
        if (n[i].freq > 3) {
            snprintf(why, len, "counter of key %u is %u", n[i].key, n[i].freq);
            return -1;
        }
    }
    for (uint32_t g = c->ghost.head; g != NIL; g = c->gpool.n[g].next) {
        if (map_get(&c->map, c->gpool.n[g].key) != NIL) {
            snprintf(why, len, "key %u both cached and in the ghost",
                     c->gpool.n[g].key);
            return -1;
        }
    }
    if (c->ghost.bytes > c->main_cap) {
        snprintf(why, len, "ghost tracks %llu bytes, more than main's %llu",
                 (unsigned long long)c->ghost.bytes,
                 (unsigned long long)c->main_cap);
        return -1;
    }
    if (c->map.count != c->small.len + c->main.len ||
        c->pool.used != c->map.count || c->gmap.count != c->ghost.len ||
        c->gpool.used != c->ghost.len) {
        snprintf(why, len, "index/pool counts disagree with the queues");
        return -1;
    }
    return 0;
}

static void s3_destroy(void *p)
{
    s3_t *c = p;

    pool_release(&c->pool);
    map_release(&c->map);
    pool_release(&c->gpool);
    map_release(&c->gmap);
    free(c);
}

/* ---- W-TinyLFU ---- */

/*
 * Count-min sketch with 4-bit counters and depth 4, sized like Caffeine's:
 * 16 counters per expected entry rounded up to a power of two (8 bytes per
 * entry), split into 4 rows. Every request adds 1 to the key's counter in
 * each row (saturating at 15); the estimate is the smallest of the four.
 * After 10 x expected additions every counter is halved, so the sketch
 * forgets old popularity (aging). No doorkeeper.
 */
typedef struct {
    uint64_t *w; /* 16 counters per word */
    uint32_t mask;
    uint32_t words_per_row;
    uint64_t additions;
    uint64_t sample;
} sketch_t;

static void sketch_init(sketch_t *s, uint32_t expected)
{
    uint64_t width = ceil_pow2(expected < 1 ? 1 : expected) * 4;

    if (width < 64) {
        width = 64;
    }
    s->words_per_row = (uint32_t)(width / 16);
    s->w = xcalloc((uint64_t)s->words_per_row * 4, sizeof(*s->w));
    s->mask = (uint32_t)(width - 1);
    s->additions = 0;
    s->sample = (uint64_t)(expected < 1 ? 1 : expected) * 10;
}

static void sketch_release(sketch_t *s)
{
    free(s->w);
    s->w = NULL;
}

/* Word and shift of key's counter in one row: each row hashes the key on
 * its own (mix64 of a row-tagged id), so the rows collide independently. */
static uint64_t *sketch_cell(const sketch_t *s, uint32_t key, unsigned row,
                             unsigned *shift)
{
    uint32_t j = (uint32_t)mix64(((uint64_t)(row + 1) << 32) | key) & s->mask;

    *shift = (j & 15u) * 4u;
    return &s->w[(uint64_t)row * s->words_per_row + (j >> 4)];
}

static unsigned sketch_freq(const sketch_t *s, uint32_t key)
{
    unsigned f = 15;

    for (unsigned r = 0; r < 4; r++) {
        unsigned sh;
        const uint64_t *w = sketch_cell(s, key, r, &sh);
        unsigned c = (unsigned)(*w >> sh) & 15u;

        if (c < f) {
            f = c;
        }
    }
    return f;
}

static void sketch_halve(sketch_t *s)
{
    uint64_t odd = 0;
    uint64_t words = (uint64_t)s->words_per_row * 4;

    for (uint64_t i = 0; i < words; i++) {
        odd += (uint64_t)__builtin_popcountll(s->w[i] & 0x1111111111111111ULL);
        s->w[i] = (s->w[i] >> 1) & 0x7777777777777777ULL;
    }
    /* Caffeine's correction: halving drops the odd counters' half units,
     * a quarter of them per addition of four counters. */
    s->additions = odd / 4 > s->additions ? 0 : (s->additions - odd / 4) / 2;
}

static void sketch_add(sketch_t *s, uint32_t key)
{
    bool added = false;

    for (unsigned r = 0; r < 4; r++) {
        unsigned sh;
        uint64_t *w = sketch_cell(s, key, r, &sh);

        if (((*w >> sh) & 15u) < 15u) {
            *w += (uint64_t)1 << sh;
            added = true;
        }
    }
    if (added && ++s->additions >= s->sample) {
        sketch_halve(s);
    }
}

/*
 * W-TinyLFU (Einziger et al.), following Caffeine's eviction (without its
 * hill climber, which resizes the window, and without its random
 * admission of warm candidates): an LRU window of 1 % of the budget in
 * front of a segmented LRU main, 20 % probation and 80 % protected. New
 * objects enter the window; the window's overflow moves to probation as
 * candidates. While the bytes held exceed the budget, the oldest
 * candidate and the probation LRU victim are compared by sketch frequency:
 * the candidate survives only if strictly more frequent. A probation hit
 * promotes to protected, whose overflow is demoted to probation.
 */
enum { W_WIN = 0, W_PROB = 1, W_PROT = 2 };

typedef struct {
    uint64_t budget;
    uint64_t window_cap;
    uint64_t protected_cap;
    pool_t pool;
    map_t map;
    list_t q[3]; /* W_WIN, W_PROB, W_PROT; head: least recently used */
    sketch_t sk;
} wtl_t;

static void *wtl_create(const pcfg_t *cfg)
{
    wtl_t *c = xcalloc(1, sizeof(*c));

    c->budget = cfg->budget;
    c->window_cap = cfg->budget - (uint64_t)((double)cfg->budget * 0.99);
    c->protected_cap = (uint64_t)((double)(cfg->budget - c->window_cap) * 0.80);
    pool_init(&c->pool, cfg->max_entries + 1);
    map_init(&c->map, cfg->expected_entries);
    for (int i = 0; i < 3; i++) {
        list_init(&c->q[i]);
    }
    sketch_init(&c->sk, cfg->expected_entries);
    return c;
}

static uint64_t wtl_held(const void *p)
{
    const wtl_t *c = p;

    return c->q[W_WIN].bytes + c->q[W_PROB].bytes + c->q[W_PROT].bytes;
}

static void wtl_drop(wtl_t *c, uint32_t i)
{
    node_t *n = c->pool.n;

    list_unlink(n, &c->q[n[i].q], i);
    map_del(&c->map, n[i].key);
    pool_free(&c->pool, i);
}

static void wtl_hit(wtl_t *c, uint32_t i)
{
    node_t *n = c->pool.n;
    list_t *from = &c->q[n[i].q];

    list_unlink(n, from, i);
    if (n[i].q != W_PROB || n[i].size > c->protected_cap) {
        list_push(n, from, i);
        return;
    }
    n[i].q = W_PROT;
    list_push(n, &c->q[W_PROT], i);
    while (c->q[W_PROT].bytes > c->protected_cap) {
        uint32_t d = c->q[W_PROT].head;

        list_unlink(n, &c->q[W_PROT], d);
        n[d].q = W_PROB;
        list_push(n, &c->q[W_PROB], d);
    }
}

/* Moves the window's overflow to probation; returns the first node moved
 * (the oldest candidate), NIL if none. */
static uint32_t wtl_evict_window(wtl_t *c)
{
    node_t *n = c->pool.n;
    uint32_t first = NIL;

    while (c->q[W_WIN].bytes > c->window_cap && c->q[W_WIN].head != NIL) {
        uint32_t v = c->q[W_WIN].head;

        list_unlink(n, &c->q[W_WIN], v);
        n[v].q = W_PROB;
        list_push(n, &c->q[W_PROB], v);
        if (first == NIL) {
            first = v;
        }
    }
    return first;
}

/*
 * Caffeine's evictFromMain. Candidates run from the first one moved
 * towards the probation tail, victims from the probation head; each
 * comparison evicts one of the two and moves that side on (a winning
 * candidate also moves on: it stays, the next candidate is compared).
 * With no candidate left, the window's LRU becomes one (once); with
 * neither left, victims are taken from protected, then from the window.
 */
static void wtl_evict_main(wtl_t *c, uint32_t cand)
{
    node_t *n = c->pool.n;
    int vq = W_PROB;
    bool window_cand = true;
    uint32_t victim = c->q[W_PROB].head;

    while (wtl_held(c) > c->budget) {
        uint32_t next;

        if (cand == NIL && window_cand) {
            cand = c->q[W_WIN].head;
            window_cand = false;
        }
        if (cand == NIL && victim == NIL) {
            if (vq == W_PROB) {
                vq = W_PROT;
                victim = c->q[W_PROT].head;
                continue;
            }
            if (vq == W_PROT) {
                vq = W_WIN;
                victim = c->q[W_WIN].head;
                continue;
            }
            break;
        }
        if (victim == NIL) {
            next = n[cand].next;
            wtl_drop(c, cand);
            cand = next;
        } else if (cand == NIL) {
            next = n[victim].next;
            wtl_drop(c, victim);
            victim = next;
        } else if (cand == victim) {
            victim = n[victim].next;
            wtl_drop(c, cand);
            cand = NIL;
        } else if (sketch_freq(&c->sk, n[cand].key) >
                   sketch_freq(&c->sk, n[victim].key)) {
            next = n[victim].next;
            wtl_drop(c, victim);
            victim = next;
            cand = n[cand].next;
        } else {
            next = n[cand].next;
            wtl_drop(c, cand);
            cand = next;
        }
    }
}

static bool wtl_access(void *p, uint32_t key, uint32_t size)
{
    wtl_t *c = p;
    uint32_t i;

    sketch_add(&c->sk, key);
    i = map_get(&c->map, key);
    if (i != NIL) {
        wtl_hit(c, i);
        return true;
    }
    if (size > c->budget) {
        return false;
    }
    i = pool_alloc(&c->pool, key, size);
    c->pool.n[i].q = W_WIN;
    list_push(c->pool.n, &c->q[W_WIN], i);
    map_put(&c->map, key, i);
    wtl_evict_main(c, wtl_evict_window(c));
    return false;
}

static int wtl_check(const void *p, char *why, size_t len)
{
    const wtl_t *c = p;

    for (uint8_t q = 0; q < 3; q++) {
        if (list_check(c->pool.n, &c->q[q], &c->map, q, true, why, len) != 0) {
            return -1;
        }
    }
    if (c->q[W_WIN].bytes > c->window_cap ||
        c->q[W_PROT].bytes > c->protected_cap) {
        snprintf(why, len, "window %llu of %llu, protected %llu of %llu",
                 (unsigned long long)c->q[W_WIN].bytes,
                 (unsigned long long)c->window_cap,
                 (unsigned long long)c->q[W_PROT].bytes,
                 (unsigned long long)c->protected_cap);
        return -1;
    }
    if (c->map.count != c->q[W_WIN].len + c->q[W_PROB].len + c->q[W_PROT].len ||
        c->pool.used != c->map.count) {
        snprintf(why, len, "index/pool counts disagree with the queues");
        return -1;
    }
    return 0;
}

static void wtl_destroy(void *p)
{
    wtl_t *c = p;

    pool_release(&c->pool);
    map_release(&c->map);
    sketch_release(&c->sk);
    free(c);
}

static const policy_ops_t policies[N_POLICIES] = {
    {"LRU", lru_create, lru_access, lru_held, lru_check, lru_destroy},
    {"S3-FIFO", s3_create, s3_access, s3_held, s3_check, s3_destroy},
    {"W-TinyLFU", wtl_create, wtl_access, wtl_held, wtl_check, wtl_destroy},
    {"SIEVE", sieve_create, sieve_access, sieve_held, sieve_check,
     sieve_destroy},
};

/* ---- traces ---------------------------------------------------------- */

/*
 * A request trace: key ids below `universe`, each object's size fixed by
 * its key. Budgets are relative to the working set: the bytes of the
 * distinct keys below `reused` that the trace requests (the scan trace's
 * one-time keys are never worth caching and are left out of it, so its
 * budgets equal those of the plain Zipf 0.99 trace).
 */
typedef struct {
    char name[24];
    uint32_t keys; /* Zipf key space */
    uint32_t *req;
    uint64_t nreq;
    uint32_t *size_of; /* per key id; NULL: every object UNIFORM_SIZE */
    uint32_t universe;
    uint32_t reused;
    uint64_t ws_objects;
    uint64_t ws_bytes;
    uint32_t min_size;
} trace_t;

static uint32_t trace_size(const trace_t *t, uint32_t key)
{
    return t->size_of != NULL ? t->size_of[key] : UNIFORM_SIZE;
}

/* Clipped log-normal, drawn from the key's hash: an object keeps its size
 * and sizes are independent of popularity. */
static uint32_t lognormal_size(uint32_t key, uint64_t seed)
{
    double u1 = ((double)(mix64(seed ^ key) >> 11) + 0.5) * 0x1.0p-53;
    double u2 =
        (double)(mix64(~seed ^ ((uint64_t)key << 32)) >> 11) * 0x1.0p-53;
    double z = sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
    double v = exp(VAR_MU + VAR_SIGMA * z);

    if (v < (double)VAR_MIN) {
        return VAR_MIN;
    }
    if (v > (double)VAR_MAX) {
        return VAR_MAX;
    }
    return (uint32_t)lround(v);
}

static void trace_footprint(trace_t *t)
{
    uint8_t *seen = xcalloc(t->reused, 1);

    t->ws_objects = 0;
    t->ws_bytes = 0;
    for (uint64_t i = 0; i < t->nreq; i++) {
        uint32_t k = t->req[i];

        if (k < t->reused && seen[k] == 0) {
            seen[k] = 1;
            t->ws_objects++;
            t->ws_bytes += trace_size(t, k);
        }
    }
    free(seen);
}

/* Ranks 1..keys map to key ids 0..keys-1. */
static void trace_zipf(trace_t *t, double s, uint32_t keys, uint64_t nreq,
                       uint64_t seed)
{
    zipf_t z;
    rng_t r;

    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "zipf %.2f", s);
    t->keys = keys;
    t->nreq = nreq;
    t->req = xcalloc(nreq, sizeof(*t->req));
    zipf_init(&z, s, keys);
    rng_seed(&r, seed);
    for (uint64_t i = 0; i < nreq; i++) {
        t->req[i] = zipf_next(&z, &r) - 1;
    }
    t->universe = keys;
    t->reused = keys;
    t->min_size = UNIFORM_SIZE;
    trace_footprint(t);
}

/*
 * Zipf 0.99 with a sequential scan of keys/10 never-seen keys after every
 * 4 x keys/10 Zipf requests: 20 % of the requests are one-time keys, in
 * runs of 10 x the 1 % budget (1 x the 10 % budget).
 */
static void trace_scan(trace_t *t, uint32_t keys, uint64_t nreq, uint64_t seed)
{
    uint32_t scan_len = keys / 10;
    uint64_t period = (uint64_t)scan_len * 5;
    uint64_t next_new = keys;
    zipf_t z;
    rng_t r;

    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "zipf 0.99+scan");
    t->keys = keys;
    t->nreq = nreq;
    t->req = xcalloc(nreq, sizeof(*t->req));
    zipf_init(&z, 0.99, keys);
    rng_seed(&r, seed);
    for (uint64_t i = 0; i < nreq; i++) {
        if (i % period < period - scan_len) {
            t->req[i] = zipf_next(&z, &r) - 1;
        } else {
            if (next_new >= NIL) {
                bug("scan trace runs out of key ids");
            }
            t->req[i] = (uint32_t)next_new++;
        }
    }
    t->universe = (uint32_t)next_new;
    t->reused = keys;
    t->min_size = UNIFORM_SIZE;
    trace_footprint(t);
}

/* Zipf 0.99 over objects of 100 B to 16 KiB (log-normal, median 1000 B). */
static void trace_varsize(trace_t *t, uint32_t keys, uint64_t nreq,
                          uint64_t seed)
{
    trace_zipf(t, 0.99, keys, nreq, seed);
    snprintf(t->name, sizeof(t->name), "zipf 0.99 var");
    t->size_of = xcalloc(keys, sizeof(*t->size_of));
    for (uint32_t k = 0; k < keys; k++) {
        t->size_of[k] = lognormal_size(k, seed ^ 0x5a5a5a5a5a5a5a5aULL);
    }
    t->min_size = VAR_MIN;
    trace_footprint(t);
}

static void trace_release(trace_t *t)
{
    free(t->req);
    free(t->size_of);
    t->req = NULL;
    t->size_of = NULL;
}

/* The configuration every policy gets for budget bytes on trace t. The
 * sketch is sized from the working set's mean object size, which a real
 * near cache would have to configure or estimate. */
static pcfg_t trace_cfg(const trace_t *t, uint64_t budget)
{
    pcfg_t cfg;
    double mean = (double)t->ws_bytes / (double)t->ws_objects;
    uint64_t most = budget / t->min_size;

    cfg.budget = budget;
    cfg.max_entries = (most < t->universe ? most : t->universe) + 1;
    cfg.expected_entries = (uint32_t)((double)budget / mean);
    if (cfg.expected_entries < 1) {
        cfg.expected_entries = 1;
    }
    return cfg;
}

/* ---- replay and report ----------------------------------------------- */

typedef struct {
    uint64_t hits;
    uint64_t hit_bytes;
    uint64_t bytes;
    uint64_t nreq;
    double secs;
} result_t;

typedef struct {
    char trace[24];
    uint32_t keys;
    unsigned pct;
    uint64_t budget;
    uint64_t budget_objects;
    result_t res[N_POLICIES];
} row_t;

static void replay(const policy_ops_t *ops, const trace_t *t, const pcfg_t *cfg,
                   result_t *r)
{
    void *p = ops->create(cfg);
    double t0;

    memset(r, 0, sizeof(*r));
    t0 = now_sec();
    for (uint64_t i = 0; i < t->nreq; i++) {
        uint32_t key = t->req[i];
        uint32_t size = trace_size(t, key);

        if (ops->access(p, key, size)) {
            r->hits++;
            r->hit_bytes += size;
        }
        r->bytes += size;
        if ((i & 0xffff) == 0 && ops->held(p) > cfg->budget) {
            bug("a policy holds more bytes than its budget");
        }
    }
    r->secs = now_sec() - t0;
    r->nreq = t->nreq;
    if (ops->held(p) > cfg->budget) {
        bug("a policy holds more bytes than its budget");
    }
    ops->destroy(p);
}

/* Replays t at every budget through every policy, one row per budget. */
static void run_trace(const trace_t *t, row_t *rows, size_t *nrows)
{
    for (int b = 0; b < N_BUDGETS; b++) {
        row_t *row = &rows[(*nrows)++];
        uint64_t budget = t->ws_bytes * budget_pct[b] / 100;
        pcfg_t cfg = trace_cfg(t, budget);

        snprintf(row->trace, sizeof(row->trace), "%s", t->name);
        row->keys = t->keys;
        row->pct = budget_pct[b];
        row->budget = budget;
        row->budget_objects = cfg.expected_entries;
        for (int p = 0; p < N_POLICIES; p++) {
            fprintf(stderr, "  %-15s %7u keys %3u%%  %-9s\r", t->name, t->keys,
                    budget_pct[b], policies[p].name);
            fflush(stderr);
            replay(&policies[p], t, &cfg, &row->res[p]);
        }
    }
}

/* A ratio as printed (4 decimals); rows are won on printed values, so a
 * tie the reader sees is a tie for every policy in it. */
static long shown(double ratio)
{
    return lround(ratio * 10000.0);
}

static double obj_ratio(const result_t *r)
{
    return (double)r->hits / (double)r->nreq;
}

static double byte_ratio(const result_t *r)
{
    return (double)r->hit_bytes / (double)r->bytes;
}

static void print_header(const char *budget_col)
{
    printf("%-15s %8s %6s %11s", "trace", "keys", "budget", budget_col);
    for (int p = 0; p < N_POLICIES; p++) {
        printf(" %10s", policies[p].name);
    }
    printf("\n");
}

static void print_ratio_table(const row_t *rows, size_t first, size_t end,
                              bool bytes, bool mib)
{
    print_header(mib ? "MiB" : "objects");
    for (size_t i = first; i < end; i++) {
        const row_t *row = &rows[i];
        long best = -1;

        for (int p = 0; p < N_POLICIES; p++) {
            double v =
                bytes ? byte_ratio(&row->res[p]) : obj_ratio(&row->res[p]);
            if (shown(v) > best) {
                best = shown(v);
            }
        }
        printf("%-15s %8u %5u%%", row->trace, row->keys, row->pct);
        if (mib) {
            printf(" %11.1f", (double)row->budget / (1024.0 * 1024.0));
        } else {
            printf(" %11llu", (unsigned long long)row->budget_objects);
        }
        for (int p = 0; p < N_POLICIES; p++) {
            double v =
                bytes ? byte_ratio(&row->res[p]) : obj_ratio(&row->res[p]);
            /* No blank after the last column: the tables go into docs. */
            printf(" %9.4f%s", v,
                   shown(v) == best     ? "*"
                   : p + 1 < N_POLICIES ? " "
                                        : "");
        }
        printf("\n");
    }
}

static void print_rate_table(const row_t *rows, size_t first, size_t end)
{
    printf("replay rate, million requests/s:\n");
    for (size_t i = first; i < end; i++) {
        printf("%-15s %8u %5u%% %11s", rows[i].trace, rows[i].keys, rows[i].pct,
               "");
        for (int p = 0; p < N_POLICIES; p++) {
            const result_t *r = &rows[i].res[p];
            printf(" %9.1f%s", (double)r->nreq / r->secs / 1e6,
                   p + 1 < N_POLICIES ? " " : "");
        }
        printf("\n");
    }
}

static void print_summary(const row_t *rows, size_t nrows, size_t var_first,
                          size_t var_end)
{
    printf("\nsummary over %zu rows (object hit ratio; rows won on printed "
           "values, ties credit every tied policy)\n",
           nrows);
    printf("%-10s %10s %9s %14s   %s\n", "policy", "mean", "rows won",
           "M requests/s", "byte hit ratio, variable-size rows: mean, won");
    for (int p = 0; p < N_POLICIES; p++) {
        double sum = 0.0;
        double bsum = 0.0;
        double secs = 0.0;
        uint64_t nreq = 0;
        unsigned won = 0;
        unsigned bwon = 0;

        for (size_t i = 0; i < nrows; i++) {
            long best = -1;
            long bbest = -1;

            for (int q = 0; q < N_POLICIES; q++) {
                if (shown(obj_ratio(&rows[i].res[q])) > best) {
                    best = shown(obj_ratio(&rows[i].res[q]));
                }
                if (shown(byte_ratio(&rows[i].res[q])) > bbest) {
                    bbest = shown(byte_ratio(&rows[i].res[q]));
                }
            }
            sum += obj_ratio(&rows[i].res[p]);
            secs += rows[i].res[p].secs;
            nreq += rows[i].res[p].nreq;
            if (shown(obj_ratio(&rows[i].res[p])) == best) {
                won++;
            }
            if (i >= var_first && i < var_end) {
                bsum += byte_ratio(&rows[i].res[p]);
                if (shown(byte_ratio(&rows[i].res[p])) == bbest) {
                    bwon++;
                }
            }
        }
        printf("%-10s %10.4f %9u %14.1f   %.4f, %u of %zu\n", policies[p].name,
               sum / (double)nrows, won, (double)nreq / secs / 1e6,
               bsum / (double)(var_end - var_first), bwon, var_end - var_first);
    }
}

static int run(bool quick)
{
    static const double zipf_s[3] = {0.80, 0.99, 1.20};
    const uint32_t key_counts[2] = {100000, 1000000};
    const int n_key_counts = quick ? 1 : 2;
    const uint32_t big = quick ? 100000 : 1000000;
    const uint64_t nreq = quick ? 2000000 : 10000000;
    row_t *rows = xcalloc(MAX_ROWS, sizeof(*rows));
    size_t nrows = 0;
    size_t fam_start;
    size_t var_start;
    uint64_t seed = 0x243f6a8885a308d3ULL;
    trace_t t;
    double t0 = now_sec();

    printf("uc-policy-sim: %s mode, %llu requests per trace; budgets 1 %%, "
           "5 %%, 10 %% of the working set's bytes\n"
           "ratios count every request, cold misses included; * = best in "
           "the row\n",
           quick ? "quick" : "full", (unsigned long long)nreq);

    fam_start = nrows;
    for (int k = 0; k < n_key_counts; k++) {
        for (int s = 0; s < 3; s++) {
            fprintf(stderr, "generating zipf %.2f over %u keys\n", zipf_s[s],
                    key_counts[k]);
            trace_zipf(&t, zipf_s[s], key_counts[k], nreq, seed++);
            run_trace(&t, rows, &nrows);
            trace_release(&t);
        }
    }
    printf("\nZipf, uniform %u-byte objects: object hit ratio\n", UNIFORM_SIZE);
    print_ratio_table(rows, fam_start, nrows, false, false);
    print_rate_table(rows, fam_start, nrows);

    fam_start = nrows;
    fprintf(stderr, "generating zipf 0.99 + scans over %u keys\n", big);
    trace_scan(&t, big, nreq, seed++);
    run_trace(&t, rows, &nrows);
    trace_release(&t);
    printf("\nZipf 0.99 with scans (20 %% of requests: runs of %u one-time "
           "keys), uniform %u-byte objects: object hit ratio\n",
           big / 10, UNIFORM_SIZE);
    print_ratio_table(rows, fam_start, nrows, false, false);
    print_rate_table(rows, fam_start, nrows);

    var_start = nrows;
    fprintf(stderr, "generating zipf 0.99, variable sizes, over %u keys\n",
            big);
    trace_varsize(&t, big, nreq, seed++);
    run_trace(&t, rows, &nrows);
    printf("\nZipf 0.99, sizes %u B to %u B (log-normal, median 1000 B, "
           "mean %.0f B over the working set)\n",
           VAR_MIN, VAR_MAX, (double)t.ws_bytes / (double)t.ws_objects);
    trace_release(&t);
    printf("object hit ratio:\n");
    print_ratio_table(rows, var_start, nrows, false, true);
    printf("byte hit ratio:\n");
    print_ratio_table(rows, var_start, nrows, true, true);
    print_rate_table(rows, var_start, nrows);

    print_summary(rows, nrows, var_start, nrows);
    fprintf(stderr, "%60s\r", "");
    printf("\ntotal run time %.1f s\n", now_sec() - t0);
    free(rows);
    return 0;
}

/* ---- self-test: naive reference implementations ---------------------- */

/*
 * The references keep each queue as a plain array in queue order (index 0
 * the oldest or least recently used) and find keys by linear search:
 * slow, but with no links or index to get wrong, so a request-by-request
 * agreement with the fast policies checks their data structures.
 */
typedef struct {
    uint32_t key;
    uint32_t size;
    uint8_t flag;
} rent_t;

typedef struct {
    rent_t *v;
    size_t len;
    size_t cap;
    uint64_t bytes;
} rvec_t;

static void rv_init(rvec_t *r, size_t cap)
{
    r->v = xcalloc(cap, sizeof(*r->v));
    r->len = 0;
    r->cap = cap;
    r->bytes = 0;
}

static void rv_release(rvec_t *r)
{
    free(r->v);
    r->v = NULL;
}

static long rv_find(const rvec_t *r, uint32_t key)
{
    for (size_t i = 0; i < r->len; i++) {
        if (r->v[i].key == key) {
            return (long)i;
        }
    }
    return -1;
}

static void rv_push(rvec_t *r, rent_t e)
{
    if (r->len == r->cap) {
        bug("reference queue full");
    }
    r->v[r->len++] = e;
    r->bytes += e.size;
}

static rent_t rv_take(rvec_t *r, size_t i)
{
    rent_t e = r->v[i];

    memmove(&r->v[i], &r->v[i + 1], (r->len - i - 1) * sizeof(*r->v));
    r->len--;
    r->bytes -= e.size;
    return e;
}

/* The key after key in r's order, NIL at the end. */
static uint32_t rv_next(const rvec_t *r, uint32_t key)
{
    long i = rv_find(r, key);

    if (i < 0) {
        bug("reference: key not in its queue");
    }
    return (size_t)i + 1 < r->len ? r->v[i + 1].key : NIL;
}

static void rv_drop(rvec_t *r, uint32_t key)
{
    long i = rv_find(r, key);

    if (i < 0) {
        bug("reference: dropping a key not in its queue");
    }
    rv_take(r, (size_t)i);
}

typedef struct {
    int policy;
    uint64_t budget;
    uint64_t cap1; /* S3-FIFO: small; W-TinyLFU: window */
    uint64_t cap2; /* S3-FIFO: main; W-TinyLFU: protected */
    rvec_t a;      /* LRU, SIEVE; S3-FIFO S; W-TinyLFU window */
    rvec_t b;      /* S3-FIFO M; W-TinyLFU probation */
    rvec_t c;      /* S3-FIFO G; W-TinyLFU protected */
    long hand;     /* SIEVE: index in a, -1 for the oldest */
    sketch_t sk;
} ref_t;

static void ref_init(ref_t *r, int policy, const pcfg_t *cfg)
{
    size_t cap = (size_t)cfg->max_entries + 1;

    memset(r, 0, sizeof(*r));
    r->policy = policy;
    r->budget = cfg->budget;
    r->hand = -1;
    rv_init(&r->a, cap);
    rv_init(&r->b, cap);
    rv_init(&r->c, cap);
    if (policy == 1) {
        r->cap1 = (uint64_t)((double)cfg->budget * 0.10);
        r->cap2 = cfg->budget - r->cap1;
    } else if (policy == 2) {
        r->cap1 = cfg->budget - (uint64_t)((double)cfg->budget * 0.99);
        r->cap2 = (uint64_t)((double)(cfg->budget - r->cap1) * 0.80);
        sketch_init(&r->sk, cfg->expected_entries);
    }
}

static void ref_release(ref_t *r)
{
    rv_release(&r->a);
    rv_release(&r->b);
    rv_release(&r->c);
    if (r->policy == 2) {
        sketch_release(&r->sk);
    }
}

static bool ref_lru(ref_t *r, uint32_t key, uint32_t size)
{
    long i = rv_find(&r->a, key);

    if (i >= 0) {
        rv_push(&r->a, rv_take(&r->a, (size_t)i));
        return true;
    }
    if (size > r->budget) {
        return false;
    }
    while (r->a.bytes + size > r->budget) {
        rv_take(&r->a, 0);
    }
    rv_push(&r->a, (rent_t){key, size, 0});
    return false;
}

static bool ref_sieve(ref_t *r, uint32_t key, uint32_t size)
{
    long i = rv_find(&r->a, key);

    if (i >= 0) {
        r->a.v[i].flag = 1;
        return true;
    }
    if (size > r->budget) {
        return false;
    }
    while (r->a.bytes + size > r->budget) {
        size_t o = r->hand >= 0 ? (size_t)r->hand : 0;

        while (r->a.v[o].flag != 0) {
            r->a.v[o].flag = 0;
            o = o + 1 < r->a.len ? o + 1 : 0;
        }
        rv_take(&r->a, o);
        /* The newer neighbour has moved into position o. */
        r->hand = o < r->a.len ? (long)o : -1;
    }
    rv_push(&r->a, (rent_t){key, size, 0});
    return false;
}

static bool ref_s3(ref_t *r, uint32_t key, uint32_t size)
{
    rvec_t *s = &r->a;
    rvec_t *m = &r->b;
    rvec_t *g = &r->c;
    long i;
    bool ghost;

    if ((i = rv_find(s, key)) >= 0 || (i = rv_find(m, key)) >= 0) {
        rvec_t *q = rv_find(s, key) >= 0 ? s : m;

        if (q->v[i].flag < 3) {
            q->v[i].flag++;
        }
        return true;
    }
    if (size >= r->cap1) {
        return false;
    }
    i = rv_find(g, key);
    ghost = i >= 0;
    if (ghost) {
        rv_take(g, (size_t)i);
    }
    while (s->bytes + m->bytes + size > r->budget) {
        if (m->bytes > r->cap2 || s->len == 0) {
            while (m->len > 0) {
                rent_t e = rv_take(m, 0);

                if (e.flag == 0) {
                    break;
                }
                e.flag--;
                rv_push(m, e);
            }
        } else {
            while (s->len > 0) {
                rent_t e = rv_take(s, 0);

                if (e.flag >= 2) {
                    e.flag = 0;
                    rv_push(m, e);
                    continue;
                }
                while (g->len > 0 && g->bytes + e.size > r->cap2) {
                    rv_take(g, 0);
                }
                if (e.size <= r->cap2) {
                    rv_push(g, (rent_t){e.key, e.size, 0});
                }
                break;
            }
        }
    }
    rv_push(ghost ? m : s, (rent_t){key, size, 0});
    return false;
}

static rvec_t *ref_wq(ref_t *r, int q)
{
    return q == W_WIN ? &r->a : q == W_PROB ? &r->b : &r->c;
}

static bool ref_wtl(ref_t *r, uint32_t key, uint32_t size)
{
    rvec_t *w = &r->a;
    rvec_t *pr = &r->b;
    rvec_t *pt = &r->c;
    long i;
    uint32_t cand = NIL;
    uint32_t victim;
    int cq = W_PROB;
    int vq = W_PROB;
    bool window_cand = true;

    sketch_add(&r->sk, key);
    if ((i = rv_find(w, key)) >= 0) {
        rv_push(w, rv_take(w, (size_t)i));
        return true;
    }
    if ((i = rv_find(pt, key)) >= 0) {
        rv_push(pt, rv_take(pt, (size_t)i));
        return true;
    }
    if ((i = rv_find(pr, key)) >= 0) {
        rent_t e = rv_take(pr, (size_t)i);

        if (e.size > r->cap2) {
            rv_push(pr, e);
            return true;
        }
        rv_push(pt, e);
        while (pt->bytes > r->cap2) {
            rv_push(pr, rv_take(pt, 0));
        }
        return true;
    }
    if (size > r->budget) {
        return false;
    }
    rv_push(w, (rent_t){key, size, 0});
    while (w->bytes > r->cap1 && w->len > 0) {
        rent_t e = rv_take(w, 0);

        rv_push(pr, e);
        if (cand == NIL) {
            cand = e.key;
        }
    }
    victim = pr->len > 0 ? pr->v[0].key : NIL;
    while (w->bytes + pr->bytes + pt->bytes > r->budget) {
        uint32_t next;

        if (cand == NIL && window_cand) {
            cand = w->len > 0 ? w->v[0].key : NIL;
            cq = W_WIN;
            window_cand = false;
        }
        if (cand == NIL && victim == NIL) {
            if (vq == W_PROB) {
                vq = W_PROT;
                victim = pt->len > 0 ? pt->v[0].key : NIL;
                continue;
            }
            if (vq == W_PROT) {
                vq = W_WIN;
                victim = w->len > 0 ? w->v[0].key : NIL;
                continue;
            }
            break;
        }
        if (victim == NIL) {
            next = rv_next(ref_wq(r, cq), cand);
            rv_drop(ref_wq(r, cq), cand);
            cand = next;
        } else if (cand == NIL) {
            next = rv_next(ref_wq(r, vq), victim);
            rv_drop(ref_wq(r, vq), victim);
            victim = next;
        } else if (cand == victim) {
            victim = rv_next(ref_wq(r, vq), victim);
            rv_drop(ref_wq(r, cq), cand);
            cand = NIL;
        } else if (sketch_freq(&r->sk, cand) > sketch_freq(&r->sk, victim)) {
            next = rv_next(ref_wq(r, vq), victim);
            rv_drop(ref_wq(r, vq), victim);
            victim = next;
            cand = rv_next(ref_wq(r, cq), cand);
        } else {
            next = rv_next(ref_wq(r, cq), cand);
            rv_drop(ref_wq(r, cq), cand);
            cand = next;
        }
    }
    return false;
}

static bool ref_access(ref_t *r, uint32_t key, uint32_t size)
{
    switch (r->policy) {
    case 0:
        return ref_lru(r, key, size);
    case 1:
        return ref_s3(r, key, size);
    case 2:
        return ref_wtl(r, key, size);
    default:
        return ref_sieve(r, key, size);
    }
}

/* ---- self-test: checks ----------------------------------------------- */

typedef struct {
    unsigned checks;
    unsigned failures;
} tally_t;

static void report(tally_t *t, bool ok, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Counts one check and prints it, "ok" or "FAIL", with both sides. */
static void report(tally_t *t, bool ok, const char *fmt, ...)
{
    va_list ap;

    t->checks++;
    if (!ok) {
        t->failures++;
    }
    printf("%s ", ok ? "ok  " : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* A configuration for hand-made traces: no size below min_size, keys
 * below universe. */
static pcfg_t test_cfg(uint64_t budget, uint32_t min_size, uint32_t universe,
                       double mean_size)
{
    pcfg_t cfg;
    uint64_t most = budget / min_size;

    cfg.budget = budget;
    cfg.max_entries = (most < universe ? most : universe) + 1;
    cfg.expected_entries = (uint32_t)((double)budget / mean_size);
    if (cfg.expected_entries < 1) {
        cfg.expected_entries = 1;
    }
    return cfg;
}

/*
 * Replays n requests (keys[i], sizes[i]) through policy p, checking after
 * every request that the bytes held fit the budget, and every 61 requests
 * (and at the end) the full structure. With ref non-NULL, every hit or
 * miss must also match the reference. Returns the hits, or -1 after
 * printing the first violation.
 */
static long drive(int p, const pcfg_t *cfg, const uint32_t *keys,
                  const uint32_t *sizes, size_t n, ref_t *ref)
{
    const policy_ops_t *ops = &policies[p];
    void *c = ops->create(cfg);
    char why[200];
    long hits = 0;

    for (size_t i = 0; i < n; i++) {
        bool hit = ops->access(c, keys[i], sizes[i]);

        if (hit) {
            hits++;
        }
        if (ops->held(c) > cfg->budget) {
            printf("     %s: request %zu: holds %llu bytes, budget %llu\n",
                   ops->name, i, (unsigned long long)ops->held(c),
                   (unsigned long long)cfg->budget);
            hits = -1;
            break;
        }
        if ((i % 61 == 0 || i + 1 == n) &&
            ops->check(c, why, sizeof(why)) != 0) {
            printf("     %s: request %zu: %s\n", ops->name, i, why);
            hits = -1;
            break;
        }
        if (ref != NULL) {
            bool want = ref_access(ref, keys[i], sizes[i]);

            if (want != hit) {
                printf("     %s: request %zu (key %u, %u B): %s, the "
                       "reference says %s\n",
                       ops->name, i, keys[i], sizes[i], hit ? "hit" : "miss",
                       want ? "hit" : "miss");
                hits = -1;
                break;
            }
        }
    }
    ops->destroy(c);
    return hits;
}

static void test_zipf(tally_t *t)
{
    static const double exps[4] = {0.8, 0.99, 1.0, 1.2};
    enum { N = 100, DRAWS = 400000 };

    for (int e = 0; e < 4; e++) {
        zipf_t z;
        rng_t r;
        uint32_t counts[N + 1] = {0};
        double norm = 0.0;
        double chi2 = 0.0;
        bool in_range = true;

        zipf_init(&z, exps[e], N);
        rng_seed(&r, 42);
        for (int i = 0; i < DRAWS; i++) {
            uint32_t k = zipf_next(&z, &r);

            if (k < 1 || k > N) {
                in_range = false;
                break;
            }
            counts[k]++;
        }
        for (int k = 1; k <= N; k++) {
            norm += pow(k, -exps[e]);
        }
        for (int k = 1; k <= N; k++) {
            double want = DRAWS * pow(k, -exps[e]) / norm;
            double d = counts[k] - want;

            chi2 += d * d / want;
        }
        /* 99 degrees of freedom: mean 99, sd 14; 99 + 6 sd. */
        report(t, in_range && chi2 < 183.0,
               "zipf s=%.2f over %d ranks: chi-square %.1f (limit 183), "
               "ranks %s",
               exps[e], N, chi2, in_range ? "in range" : "OUT OF RANGE");
    }
    {
        zipf_t z;
        rng_t r;
        bool ones = true;

        zipf_init(&z, 0.99, 1);
        rng_seed(&r, 7);
        for (int i = 0; i < 1000; i++) {
            ones = ones && zipf_next(&z, &r) == 1;
        }
        report(t, ones, "zipf over 1 rank always returns rank 1");
    }
}

static void test_map(tally_t *t)
{
    enum { KEYS = 20000, OPS = 400000 };
    uint32_t *want = xcalloc(KEYS, sizeof(*want));
    map_t m;
    rng_t r;
    uint32_t present = 0;
    bool ok = true;

    for (uint32_t k = 0; k < KEYS; k++) {
        want[k] = NIL;
    }
    map_init(&m, 4);
    rng_seed(&r, 3);
    for (int i = 0; i < OPS && ok; i++) {
        uint32_t k = rng_below(&r, KEYS);

        if (map_get(&m, k) != want[k]) {
            ok = false;
        } else if (want[k] == NIL) {
            want[k] = (uint32_t)i;
            map_put(&m, k, want[k]);
            present++;
        } else if (rng_below(&r, 3) != 0) {
            map_del(&m, k);
            want[k] = NIL;
            present--;
        }
    }
    for (uint32_t k = 0; k < KEYS && ok; k++) {
        ok = map_get(&m, k) == want[k];
    }
    report(t, ok && m.count == present,
           "key index: %d random puts, gets and deletes agree with an array "
           "(%u keys present, index counts %u)",
           OPS, present, m.count);
    map_release(&m);
    free(want);
}

static void test_sketch(tally_t *t)
{
    sketch_t s;
    bool never_under = true;
    unsigned f;

    sketch_init(&s, 1000);
    for (uint32_t k = 0; k < 1000; k++) {
        for (uint32_t j = 0; j <= k % 7; j++) {
            sketch_add(&s, k);
        }
    }
    for (uint32_t k = 0; k < 1000; k++) {
        unsigned want = k % 7 + 1;

        never_under = never_under && sketch_freq(&s, k) >= want;
    }
    report(t, never_under && s.additions == 3997,
           "sketch: no estimate below the true count (1000 keys, %llu "
           "additions, no aging yet)",
           (unsigned long long)s.additions);
    sketch_release(&s);

    sketch_init(&s, 1000);
    for (int i = 0; i < 40; i++) {
        sketch_add(&s, 5);
    }
    report(t, sketch_freq(&s, 5) == 15,
           "sketch: counters saturate at 15 "
           "(got %u)",
           sketch_freq(&s, 5));
    sketch_release(&s);

    sketch_init(&s, 1); /* ages after 10 additions */
    for (int i = 0; i < 9; i++) {
        sketch_add(&s, 9);
    }
    f = sketch_freq(&s, 9);
    sketch_add(&s, 9);
    report(t, f == 9 && sketch_freq(&s, 9) == 5,
           "sketch: the 10th addition halves the counters (9 -> %u, then "
           "10 -> %u, want 9 and 5)",
           f, sketch_freq(&s, 9));
    sketch_release(&s);
}

/* K distinct keys repeated `rounds` times, each round in order or
 * shuffled: with every object fitting, every policy misses exactly once
 * per key. */
static void test_repeat(tally_t *t, int p, bool variable, bool shuffled)
{
    enum { K = 200, ROUNDS = 20 };
    uint32_t *keys = xcalloc(K * ROUNDS, sizeof(*keys));
    uint32_t *sizes = xcalloc(K * ROUNDS, sizeof(*sizes));
    uint32_t perm[K];
    uint64_t budget = 0;
    rng_t r;
    pcfg_t cfg;
    long hits;

    rng_seed(&r, 11);
    for (uint32_t k = 0; k < K; k++) {
        perm[k] = 1000 + k;
        budget += variable ? 100 + (uint32_t)(mix64(1000 + k) % 901) : 100;
    }
    for (int round = 0; round < ROUNDS; round++) {
        if (shuffled) {
            for (uint32_t k = K - 1; k > 0; k--) {
                uint32_t j = rng_below(&r, k + 1);
                uint32_t x = perm[k];

                perm[k] = perm[j];
                perm[j] = x;
            }
        }
        for (uint32_t k = 0; k < K; k++) {
            uint32_t key = perm[k];

            keys[round * K + k] = key;
            sizes[round * K + k] =
                variable ? 100 + (uint32_t)(mix64(key) % 901) : 100;
        }
    }
    cfg = test_cfg(budget, 100, 2000, (double)budget / K);
    hits = drive(p, &cfg, keys, sizes, K * ROUNDS, NULL);
    report(t, hits == (long)K * (ROUNDS - 1),
           "%s: %d keys x %d rounds (%s, %s sizes), budget = their %llu "
           "bytes: %ld hits, want %d",
           policies[p].name, K, ROUNDS, shuffled ? "shuffled" : "in order",
           variable ? "100-1000 B" : "100 B", (unsigned long long)budget, hits,
           K * (ROUNDS - 1));
    free(keys);
    free(sizes);
}

static void test_oversize(tally_t *t, int p)
{
    const uint32_t keys[5] = {5, 5, 5, 6, 6};
    const uint32_t sizes[5] = {10001, 10001, 10001, 500, 500};
    pcfg_t cfg = test_cfg(10000, 100, 10, 500);
    long hits = drive(p, &cfg, keys, sizes, 5, NULL);

    report(t, hits == 1,
           "%s: a 10001-byte object is never admitted to a 10000-byte "
           "budget, a 500-byte one is: %ld hits, want 1",
           policies[p].name, hits);
}

/* Random traces: Zipf 0.9 over 300 keys, one-time keys (15 %) and a
 * sequential run of 40 new keys every 1000 requests, sizes 1-64 bytes,
 * against the reference implementation. */
static void test_reference(tally_t *t, int p)
{
    enum { N = 20000 };
    static const uint64_t budgets[3] = {600, 2500, 9000};
    uint32_t *keys = xcalloc(N, sizeof(*keys));
    uint32_t *sizes = xcalloc(N, sizeof(*sizes));

    for (int seed = 1; seed <= 2; seed++) {
        zipf_t z;
        rng_t r;
        uint32_t fresh = 100000;

        zipf_init(&z, 0.9, 300);
        rng_seed(&r, (uint64_t)seed * 977);
        for (size_t i = 0; i < N; i++) {
            if (i % 1000 >= 960 || rng_below(&r, 100) < 15) {
                keys[i] = fresh++;
            } else {
                keys[i] = zipf_next(&z, &r);
            }
            sizes[i] = 1 + (uint32_t)(mix64(keys[i] ^ 0xabcdef) % 64);
        }
        for (int b = 0; b < 3; b++) {
            pcfg_t cfg = test_cfg(budgets[b], 1, fresh, 32.5);
            ref_t ref;
            long hits;

            ref_init(&ref, p, &cfg);
            hits = drive(p, &cfg, keys, sizes, N, &ref);
            ref_release(&ref);
            report(t, hits >= 0,
                   "%s: agrees with the reference on %d mixed requests, "
                   "budget %llu bytes, seed %d (%ld hits)",
                   policies[p].name, N, (unsigned long long)budgets[b], seed,
                   hits);
        }
    }
    free(keys);
    free(sizes);
}

/* A loop over C + 1 keys with room for C: LRU always evicts the key
 * that comes next. */
static void test_lru_loop(tally_t *t)
{
    enum { C = 100, ROUNDS = 50, N = (C + 1) * ROUNDS };
    uint32_t *keys = xcalloc(N, sizeof(*keys));
    uint32_t *sizes = xcalloc(N, sizeof(*sizes));
    pcfg_t cfg = test_cfg((uint64_t)C * 100, 100, C + 1, 100);
    long hits;

    for (size_t i = 0; i < N; i++) {
        keys[i] = (uint32_t)(i % (C + 1));
        sizes[i] = 100;
    }
    hits = drive(0, &cfg, keys, sizes, N, NULL);
    report(t, hits == 0,
           "LRU: loop over %d keys with room for %d: %ld hits, want 0", C + 1,
           C, hits);
    free(keys);
    free(sizes);
}

/*
 * 500 hot keys, read 8 times each, then 3 one-time keys per hot read
 * (each hot key comes back every 2000 requests, twice the 1000 objects
 * that fit). Counted from the third round of hot reads on, when none of
 * the warm-up's recency is left, LRU never hits a hot key; S3-FIFO (hot
 * keys sit in M, one-time keys die in S) and W-TinyLFU (one-time
 * candidates lose to probation victims, hot keys sit in protected) are
 * designed to keep them. SIEVE is printed, not checked.
 */
static void test_scan_resistance(tally_t *t)
{
    enum {
        HOT = 500,
        WARM = HOT * 8,
        PHASE = 40000,
        N = WARM + PHASE,
        SETTLED = WARM + 2 * HOT * 4
    };
    uint32_t *keys = xcalloc(N, sizeof(*keys));
    uint32_t *sizes = xcalloc(N, sizeof(*sizes));
    uint32_t fresh = 10000;
    rng_t r;

    rng_seed(&r, 5);
    for (size_t i = 0; i < WARM; i++) {
        keys[i] = rng_below(&r, HOT);
    }
    for (size_t i = WARM; i < N; i++) {
        keys[i] =
            (i - WARM) % 4 == 3 ? (uint32_t)((i - WARM) / 4 % HOT) : fresh++;
    }
    for (size_t i = 0; i < N; i++) {
        sizes[i] = 1;
    }
    for (int p = 0; p < N_POLICIES; p++) {
        pcfg_t cfg = test_cfg(1000, 1, fresh, 1);
        const policy_ops_t *ops = &policies[p];
        void *c = ops->create(&cfg);
        unsigned hot_hits = 0;
        double ratio;

        for (size_t i = 0; i < N; i++) {
            bool hit = ops->access(c, keys[i], sizes[i]);

            if (i >= SETTLED && keys[i] < HOT && hit) {
                hot_hits++;
            }
        }
        ops->destroy(c);
        ratio = (double)hot_hits / ((N - SETTLED) / 4);
        if (p == 0) {
            report(t, hot_hits == 0,
                   "LRU: hot keys behind 3:1 one-time keys: %u hot hits, "
                   "want 0",
                   hot_hits);
        } else if (p == 1 || p == 2) {
            report(t, ratio > 0.95,
                   "%s: hot keys behind 3:1 one-time keys: hot hit ratio "
                   "%.4f, want > 0.95",
                   ops->name, ratio);
        } else {
            printf("info %s: hot keys behind 3:1 one-time keys: hot hit "
                   "ratio %.4f (not checked)\n",
                   ops->name, ratio);
        }
    }
    free(keys);
    free(sizes);
}

/*
 * Under the independent reference model (what the Zipf traces are), LRU's
 * hit ratio is predicted by Che's approximation, and no policy that does
 * not see the future beats keeping the C most popular keys (Aho, Denning
 * and Ullman's A0). Checks the sampler and the policies together, past a
 * warm-up of 10 % of the requests.
 */
static void test_irm(tally_t *t)
{
    enum { KEYS = 10000, N = 1000000, WARMUP = N / 10 };
    static const double exps[2] = {0.8, 0.99};
    static const uint32_t room[2] = {1000, 200};
    uint32_t *keys = xcalloc(N, sizeof(*keys));
    double *prob = xcalloc(KEYS, sizeof(*prob));

    for (int e = 0; e < 2; e++) {
        zipf_t z;
        rng_t r;
        double norm = 0.0;
        double lo = 0.0;
        double hi = 1e12;
        double che = 0.0;
        double top = 0.0;
        pcfg_t cfg = test_cfg((uint64_t)room[e] * 100, 100, KEYS, 100);

        zipf_init(&z, exps[e], KEYS);
        rng_seed(&r, 99 + (uint64_t)e);
        for (size_t i = 0; i < N; i++) {
            keys[i] = zipf_next(&z, &r) - 1;
        }
        for (int k = 0; k < KEYS; k++) {
            prob[k] = pow(k + 1, -exps[e]);
            norm += prob[k];
        }
        for (int k = 0; k < KEYS; k++) {
            prob[k] /= norm;
        }
        /* Che: the characteristic time T at which the expected number of
         * distinct keys requested equals C; key k is resident with
         * probability 1 - exp(-p_k T). */
        for (int it = 0; it < 200; it++) {
            double mid = (lo + hi) / 2.0;
            double occ = 0.0;

            for (int k = 0; k < KEYS; k++) {
                occ += 1.0 - exp(-prob[k] * mid);
            }
            if (occ < (double)room[e]) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        for (int k = 0; k < KEYS; k++) {
            che += prob[k] * (1.0 - exp(-prob[k] * lo));
            if (k < (int)room[e]) {
                top += prob[k];
            }
        }
        for (int p = 0; p < N_POLICIES; p++) {
            const policy_ops_t *ops = &policies[p];
            void *c = ops->create(&cfg);
            uint64_t hits = 0;
            double ratio;

            for (size_t i = 0; i < N; i++) {
                if (ops->access(c, keys[i], 100) && i >= WARMUP) {
                    hits++;
                }
            }
            ops->destroy(c);
            ratio = (double)hits / (double)(N - WARMUP);
            if (p == 0) {
                report(t, fabs(ratio - che) < 0.005,
                       "LRU: zipf %.2f over %d keys, room for %u: hit ratio "
                       "%.4f, Che's approximation %.4f (within 0.005)",
                       exps[e], KEYS, room[e], ratio, che);
            }
            report(t, ratio < top + 0.003,
                   "%s: zipf %.2f over %d keys, room for %u: hit ratio %.4f "
                   "below the top-%u keys' %.4f (+0.003 noise)",
                   ops->name, exps[e], KEYS, room[e], ratio, room[e], top);
        }
    }
    free(keys);
    free(prob);
}

static int self_test(void)
{
    tally_t t = {0, 0};

    test_zipf(&t);
    test_map(&t);
    test_sketch(&t);
    for (int p = 0; p < N_POLICIES; p++) {
        test_repeat(&t, p, false, false);
        test_repeat(&t, p, false, true);
        test_repeat(&t, p, true, true);
        test_oversize(&t, p);
        test_reference(&t, p);
    }
    test_lru_loop(&t);
    test_scan_resistance(&t);
    test_irm(&t);
    printf("self-test: %u checks, %u failed\n", t.checks, t.failures);
    return t.failures == 0 ? 0 : 1;
}

/* ---- main ------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: uc-policy-sim [--quick | --self-test]\n"
               "  (none)       full run: 10^5 and 10^6 keys, 10^7 requests "
               "per trace (1-2 minutes)\n"
               "  --quick      10^5 keys, 2 x 10^6 requests per trace "
               "(seconds)\n"
               "  --self-test  check every policy against its invariants "
               "and a reference; exit 1 on a failure\n");
}

int main(int argc, char **argv)
{
    bool quick = false;
    bool self = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--self-test") == 0) {
            self = true;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "uc-policy-sim: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (self) {
        return self_test();
    }
    return run(quick);
}
