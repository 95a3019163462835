/* SPDX-License-Identifier: MIT */
/*
 * The record of a keyspace's most read entries (hot.h): Space-Saving over
 * a stream-summary, in UC__HOT_SHARDS shards chosen by the key's hash.
 *
 * How it works. A shard has m counters, each a key, a count and an error.
 * A read of a key held increments its count. A read of a key not held takes
 * a free counter (count 1, error 0) or, when all m are taken, the counter
 * with the smallest count c: the new key gets count c + 1 and error c (what
 * it may owe to the keys it replaced). So a count never falls below the
 * key's true reads (while nothing is halved) and count - error never rises
 * above them, and every key read more than N/m times of a shard's N reads
 * is held. Keys are spread over the shards by a keyed hash, so each shard
 * sees about N/S of the reads and holds m/S counters: the same bound.
 *
 * The stream-summary (Metwally et al.) keeps both operations O(1): counters
 * hang in buckets of equal count, and the buckets form a list in ascending
 * order. An increment moves its counter to the next bucket when that one
 * has count + 1, else into a new bucket right after its own (or the bucket
 * itself moves up when the counter was alone in it); the smallest count is
 * the list's head. Keys are found through an open-addressing index (linear
 * probing, deletion by backward shift, at most half full), hashed with
 * SipHash under a random key, so chosen keys cannot pile up in one run.
 *
 * A shard's arrays start at GROW_FIRST counters and double up to its share
 * of the capacity, so a keyspace of few keys holds little.
 *
 * The read path pays a thread-local coin for most reads; one in `sample`
 * takes its shard's lock. With adaptive sampling every read takes it while
 * the keyspace is read slowly (its cost is then small, and precision is
 * what a slow stream lacks), and the coin comes back when the rate passes
 * the setting; the counts are rescaled at each switch, so they stay in one
 * unit. Queries visit the shards one lock at a time and
 * select with a heap, ranking by count - error (see before()).
 */
#include "hot.h"

#include <malloc.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "siphash.h"
#include "utxocache/error.h"

#define NIL UINT32_MAX
/* Counted reads after which the k-th count of uc__hot_is_top() is
 * computed again. */
#define THRESHOLD_EVERY 1024u
/* The shortest span over which uc__hot_tune() measures the read rate. */
#define TUNE_EVERY_US 1000000ull
/* Keys are kept in buffers of a multiple of this many bytes. */
#define KEY_ROUND 16u
/* A shard's first allocation, in counters; it doubles up to its share of
 * the capacity. */
#define GROW_FIRST 64u

/* Keys shorter than this live in the counter itself (one cache line
 * fewer to compare; "feedback:stats:<uuid>" is 51 bytes). */
#define KEY_INLINE 56u

typedef struct {
    uint64_t hash;
    uint64_t error;
    char *key; /* kcap bytes, NUL-terminated; NULL: the key is in inl */
    uint16_t klen;
    uint16_t kcap;
    uint32_t bucket;
    uint32_t prev, next; /* in its bucket's list */
    char inl[KEY_INLINE];
} counter_t;

typedef struct {
    uint64_t count;
    uint32_t first; /* a counter of this count */
    uint32_t size;  /* counters in it */
    uint32_t prev, next;
} bucket_t;

typedef struct {
    alignas(64) pthread_mutex_t mu;
    uint32_t cap;   /* counters it may have */
    uint32_t alloc; /* counters it has (the arrays' length) */
    uint32_t used;  /* counters holding a key */
    uint32_t mask;  /* index slots - 1 */
    counter_t *ctr;
    bucket_t *bkt; /* as many as counters: a bucket is never empty */
    /* The index: the key hash's low 32 bits << 32 | counter + 1; 0:
     * empty. A probe compares the hash bits before it reads a counter. */
    uint64_t *slot;
    uint32_t free_bkt;        /* unused buckets, linked by next */
    uint32_t lo, hi;          /* the smallest and the largest bucket */
    size_t keybytes;          /* the keys kept outside their counters */
    size_t arraybytes;        /* counters, buckets and index */
    _Atomic size_t bytes;     /* arrays and keys, for uc__hot_bytes() */
    _Atomic uint64_t counted; /* reads counted (written under mu) */
} shard_t;

struct uc__hot {
    shard_t shards[UC__HOT_SHARDS];
    uint64_t k0, k1;
    /* The sampling rate in use, less one: 0 (every read) or sample_mask.
     * Changed only by uc__hot_tune(), with the counts rescaled. */
    _Atomic uint32_t mask;
    uint32_t sample_mask; /* the configured rate, less one */
    /* Adaptive sampling (uc__hot_adapt): reads a second above which the
     * record samples; 0: it always does. The rest is uc__hot_tune()'s. */
    uint64_t above;
    uint64_t tune_at_us, tune_counted;
    size_t base_bytes;
    _Atomic uint64_t halvings;
    /* The k-th count, kept for uc__hot_is_top(). */
    pthread_mutex_t thr_mu;
    int thr_valid;
    size_t thr_k;
    uint64_t thr_count, thr_at, thr_halvings;
};

static _Thread_local uint64_t coin_state;
static _Thread_local int muted;

/* ---- buckets and counters (under the shard's lock) ---------------------- */

static uint32_t bucket_take(shard_t *s, uint64_t count)
{
    uint32_t b = s->free_bkt;
    bucket_t *nb = &s->bkt[b];

    s->free_bkt = nb->next;
    nb->count = count;
    nb->first = NIL;
    nb->size = 0;
    nb->prev = NIL;
    nb->next = NIL;
    return b;
}

/* Links bucket b into the list after `at` (NIL: at the low end). */
static void bucket_link_after(shard_t *s, uint32_t at, uint32_t b)
{
    bucket_t *nb = &s->bkt[b];

    nb->prev = at;
    nb->next = at == NIL ? s->lo : s->bkt[at].next;
    if (nb->next != NIL) {
        s->bkt[nb->next].prev = b;
    } else {
        s->hi = b;
    }
    if (at != NIL) {
        s->bkt[at].next = b;
    } else {
        s->lo = b;
    }
}

static void bucket_drop(shard_t *s, uint32_t b)
{
    bucket_t *ob = &s->bkt[b];

    if (ob->prev != NIL) {
        s->bkt[ob->prev].next = ob->next;
    } else {
        s->lo = ob->next;
    }
    if (ob->next != NIL) {
        s->bkt[ob->next].prev = ob->prev;
    } else {
        s->hi = ob->prev;
    }
    ob->next = s->free_bkt;
    s->free_bkt = b;
}

static void counter_attach(shard_t *s, uint32_t c, uint32_t b)
{
    counter_t *k = &s->ctr[c];
    bucket_t *bb = &s->bkt[b];

    k->bucket = b;
    k->prev = NIL;
    k->next = bb->first;
    if (bb->first != NIL) {
        s->ctr[bb->first].prev = c;
    }
    bb->first = c;
    bb->size++;
}

/* Takes counter c out of its bucket, which may be left empty. */
static void counter_detach(shard_t *s, uint32_t c)
{
    counter_t *k = &s->ctr[c];
    bucket_t *bb = &s->bkt[k->bucket];

    if (k->prev != NIL) {
        s->ctr[k->prev].next = k->next;
    } else {
        bb->first = k->next;
    }
    if (k->next != NIL) {
        s->ctr[k->next].prev = k->prev;
    }
    bb->size--;
}

static void increment(shard_t *s, uint32_t c)
{
    uint32_t b = s->ctr[c].bucket;
    uint64_t want = s->bkt[b].count + 1;
    uint32_t nb = s->bkt[b].next;
    int next_fits = nb != NIL && s->bkt[nb].count == want;

    if (s->bkt[b].size == 1 && !next_fits) {
        /* Alone in its bucket, and the next one is higher still. */
        s->bkt[b].count = want;
        return;
    }
    counter_detach(s, c);
    if (!next_fits) {
        nb = bucket_take(s, want);
        bucket_link_after(s, b, nb);
    }
    counter_attach(s, c, nb);
    if (s->bkt[b].size == 0) {
        bucket_drop(s, b);
    }
}

/* ---- the index (under the shard's lock) ---------------------------------- */

static const char *ckey(const counter_t *k)
{
    return k->key != NULL ? k->key : k->inl;
}

static uint64_t slot_of(uint64_t hv, uint32_t c)
{
    return (hv << 32) | ((uint64_t)c + 1);
}

/* The counter holding the key, or NIL; *at is its slot, or the empty slot
 * where it would go. */
static uint32_t find(const shard_t *s, uint64_t hv, const char *key,
                     size_t klen, uint32_t *at)
{
    uint32_t i = (uint32_t)hv & s->mask;

    for (;;) {
        uint64_t v = s->slot[i];
        if (v == 0) {
            *at = i;
            return NIL;
        }
        if ((uint32_t)(v >> 32) == (uint32_t)hv) {
            uint32_t c = (uint32_t)v - 1;
            const counter_t *k = &s->ctr[c];
            if (k->hash == hv && k->klen == klen &&
                memcmp(ckey(k), key, klen) == 0) {
                *at = i;
                return c;
            }
        }
        i = (i + 1) & s->mask;
    }
}

/* Empties slot i and moves up the entries after it that probing would no
 * longer reach (linear probing needs no tombstones this way). */
static void index_remove(shard_t *s, uint32_t i)
{
    uint32_t j = i;

    s->slot[i] = 0;
    for (;;) {
        j = (j + 1) & s->mask;
        if (s->slot[j] == 0) {
            return;
        }
        uint32_t home = (uint32_t)(s->slot[j] >> 32) & s->mask;
        /* The entry at j stays when its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            s->slot[i] = s->slot[j];
            s->slot[j] = 0;
            i = j;
        }
    }
}

static uint32_t index_free_slot(const shard_t *s, uint64_t hv)
{
    uint32_t i = (uint32_t)hv & s->mask;

    while (s->slot[i] != 0) {
        i = (i + 1) & s->mask;
    }
    return i;
}

/* ---- shards ---------------------------------------------------------------
 */

static void shard_bytes(shard_t *s)
{
    atomic_store_explicit(&s->bytes, s->arraybytes + s->keybytes,
                          memory_order_relaxed);
}

/*
 * Grows the shard's arrays (doubling, from GROW_FIRST counters up to its
 * capacity), so a keyspace with few distinct keys holds little; the index
 * is built again at its new size. 0, or -1 with nothing changed.
 */
static int shard_grow(shard_t *s)
{
    uint32_t n = s->alloc == 0 ? GROW_FIRST : 2 * s->alloc;
    size_t nslots = 1;
    counter_t *ctr;
    bucket_t *bkt;
    uint64_t *slot;

    if (n > s->cap) {
        n = s->cap;
    }
    while (nslots < 2 * (size_t)n) {
        nslots <<= 1;
    }
    slot = calloc(nslots, sizeof(*slot));
    if (slot == NULL) {
        return -1;
    }
    ctr = realloc(s->ctr, n * sizeof(*ctr));
    if (ctr == NULL) {
        free(slot);
        return -1;
    }
    s->ctr = ctr;
    bkt = realloc(s->bkt, n * sizeof(*bkt));
    if (bkt == NULL) {
        free(slot);
        /* the larger counter array is kept, unused */
        s->arraybytes = malloc_usable_size(s->ctr) +
                        malloc_usable_size(s->bkt) +
                        malloc_usable_size(s->slot);
        shard_bytes(s);
        return -1;
    }
    s->bkt = bkt;
    memset(ctr + s->alloc, 0, (n - s->alloc) * sizeof(*ctr));
    /* The new buckets join the free list. */
    for (uint32_t i = s->alloc; i < n; i++) {
        bkt[i].next = i + 1 < n ? i + 1 : s->free_bkt;
    }
    s->free_bkt = s->alloc;
    free(s->slot);
    s->slot = slot;
    s->mask = (uint32_t)(nslots - 1);
    for (uint32_t c = 0; c < s->used; c++) {
        s->slot[index_free_slot(s, ctr[c].hash)] = slot_of(ctr[c].hash, c);
    }
    s->alloc = n;
    s->arraybytes = malloc_usable_size(s->ctr) + malloc_usable_size(s->bkt) +
                    malloc_usable_size(s->slot);
    shard_bytes(s);
    return 0;
}

/* Puts the key into counter c's buffer, growing it when needed. 0, or -1
 * (nothing changed) when memory cannot be had. */
static int set_key(shard_t *s, counter_t *k, const char *key, size_t klen)
{
    if (klen < KEY_INLINE) {
        if (k->key != NULL) {
            s->keybytes -= malloc_usable_size(k->key);
            free(k->key);
            k->key = NULL;
            k->kcap = 0;
        }
        memcpy(k->inl, key, klen);
        k->inl[klen] = '\0';
        k->klen = (uint16_t)klen;
        return 0;
    }
    if (klen + 1 > k->kcap) {
        size_t cap = (klen + KEY_ROUND) / KEY_ROUND * KEY_ROUND;
        char *p = malloc(cap);
        if (p == NULL) {
            return -1;
        }
        if (k->key != NULL) {
            s->keybytes -= malloc_usable_size(k->key);
            free(k->key);
        }
        s->keybytes += malloc_usable_size(p);
        k->key = p;
        k->kcap = (uint16_t)cap;
    }
    memcpy(k->key, key, klen);
    k->key[klen] = '\0';
    k->klen = (uint16_t)klen;
    return 0;
}

static uint64_t key_hash(const uc__hot_t *h, const char *key, size_t klen)
{
    return uc__siphash13((const unsigned char *)key, klen, h->k0, h->k1);
}

static shard_t *shard_of(uc__hot_t *h, uint64_t hv)
{
    /* The top bits: the low ones place the key in the shard's index. */
    return &h->shards[(size_t)(hv >> 58) % UC__HOT_SHARDS];
}

/* ---- the record -----------------------------------------------------------
 */

static void seed(uc__hot_t *h)
{
    uint64_t k[2];

    if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] =
            (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec;
        k[1] = (uint64_t)(uintptr_t)h * 0xc2b2ae3d27d4eb4fULL ^ k[0];
    }
    h->k0 = k[0];
    h->k1 = k[1];
}

int uc__hot_create(size_t capacity, unsigned sample, uc__hot_t **out)
{
    size_t size = (sizeof(uc__hot_t) + 63) / 64 * 64;
    uc__hot_t *h = aligned_alloc(64, size);
    unsigned p = 1;
    size_t i;

    if (h == NULL) {
        return UC_ENOMEM;
    }
    memset(h, 0, sizeof(*h));
    if (capacity < UC__HOT_CAPACITY_MIN) {
        capacity = UC__HOT_CAPACITY_MIN;
    }
    if (capacity > UC__HOT_CAPACITY_MAX) {
        capacity = UC__HOT_CAPACITY_MAX;
    }
    while (sample >= 2 * p && p < (1u << 30)) {
        p *= 2;
    }
    h->sample_mask = p - 1;
    atomic_init(&h->mask, p - 1);
    seed(h);
    if (pthread_mutex_init(&h->thr_mu, NULL) != 0) {
        free(h);
        return UC_ENOMEM;
    }
    for (i = 0; i < UC__HOT_SHARDS; i++) {
        shard_t *s = &h->shards[i];
        s->cap = (uint32_t)((capacity + UC__HOT_SHARDS - 1) / UC__HOT_SHARDS);
        s->free_bkt = NIL;
        s->lo = NIL;
        s->hi = NIL;
        if (pthread_mutex_init(&s->mu, NULL) != 0) {
            break;
        }
    }
    if (i < UC__HOT_SHARDS) {
        while (i-- > 0) {
            pthread_mutex_destroy(&h->shards[i].mu);
        }
        pthread_mutex_destroy(&h->thr_mu);
        free(h);
        return UC_ENOMEM;
    }
    h->base_bytes = malloc_usable_size(h);
    *out = h;
    return UC_OK;
}

void uc__hot_destroy(uc__hot_t *h)
{
    if (h == NULL) {
        return;
    }
    for (size_t i = 0; i < UC__HOT_SHARDS; i++) {
        shard_t *s = &h->shards[i];
        if (s->ctr != NULL) {
            for (uint32_t c = 0; c < s->used; c++) {
                free(s->ctr[c].key);
            }
        }
        free(s->ctr);
        free(s->bkt);
        free(s->slot);
        pthread_mutex_destroy(&s->mu);
    }
    pthread_mutex_destroy(&h->thr_mu);
    free(h);
}

void uc__hot_mute(int on)
{
    muted = on != 0;
}

unsigned uc__hot_sample(const uc__hot_t *h)
{
    return h != NULL ? atomic_load_explicit(&h->mask, memory_order_relaxed) + 1
                     : 1;
}

void uc__hot_record(uc__hot_t *h, const char *key, size_t klen)
{
    if (h == NULL || muted) {
        return;
    }
    uint32_t mask = atomic_load_explicit(&h->mask, memory_order_relaxed);

    if (mask != 0) {
        /* xorshift64, seeded by the thread's own address */
        uint64_t x = coin_state;
        if (x == 0) {
            x = (uint64_t)(uintptr_t)&coin_state * 0x9e3779b97f4a7c15ULL | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        coin_state = x;
        if (((uint32_t)(x >> 32) & mask) != 0) {
            return;
        }
    }
    uc__hot_add(h, key, klen);
}

void uc__hot_add(uc__hot_t *h, const char *key, size_t klen)
{
    uint64_t hv;
    shard_t *s;
    uint32_t c, at;

    if (h == NULL || key == NULL || klen == 0 || klen >= UC_HOT_KEY_MAX) {
        return;
    }
    hv = key_hash(h, key, klen);
    s = shard_of(h, hv);
    pthread_mutex_lock(&s->mu);
    c = s->slot != NULL ? find(s, hv, key, klen, &at) : NIL;
    if (c == NIL && s->used == s->alloc && s->alloc < s->cap &&
        shard_grow(s) == 0) {
        (void)find(s, hv, key, klen, &at);
    }
    if (c == NIL && s->alloc == 0) {
        pthread_mutex_unlock(&s->mu);
        return; /* no memory for a first counter */
    }
    if (c != NIL) {
        increment(s, c);
    } else if (s->used < s->alloc) {
        c = s->used;
        if (set_key(s, &s->ctr[c], key, klen) != 0) {
            pthread_mutex_unlock(&s->mu);
            return;
        }
        s->used++;
        s->ctr[c].hash = hv;
        s->ctr[c].error = 0;
        uint32_t b = s->lo;
        if (b == NIL || s->bkt[b].count != 1) {
            b = bucket_take(s, 1);
            bucket_link_after(s, NIL, b);
        }
        counter_attach(s, c, b);
        s->slot[at] = slot_of(hv, c);
        shard_bytes(s);
    } else {
        /* The smallest count gives its counter to the new key. */
        uint32_t b = s->lo, old_at;
        counter_t *k;
        c = s->bkt[b].first;
        k = &s->ctr[c];
        (void)find(s, k->hash, ckey(k), k->klen, &old_at);
        if (set_key(s, k, key, klen) != 0) {
            pthread_mutex_unlock(&s->mu);
            return;
        }
        index_remove(s, old_at);
        k->hash = hv;
        k->error = s->bkt[b].count;
        s->slot[index_free_slot(s, hv)] = slot_of(hv, c);
        increment(s, c);
        shard_bytes(s);
    }
    atomic_fetch_add_explicit(&s->counted, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->mu);
}

static uint64_t scaled(const uc__hot_t *h, uint64_t n)
{
    uint64_t f =
        (uint64_t)atomic_load_explicit(&h->mask, memory_order_relaxed) + 1;
    return n > UINT64_MAX / f ? UINT64_MAX : n * f;
}

/*
 * The order of the lists: by the reads an entry surely had (count - error),
 * then by count. Ranking by the lower bound keeps a key that just took a
 * counter (its count is mostly the error it inherited) below the keys that
 * earned theirs, which matters when reads are spread thin.
 */
static int before(const uc_hot_entry_t *a, const uc_hot_entry_t *b)
{
    uint64_t la = a->reads - a->error, lb = b->reads - b->error;
    return la != lb ? la > lb : a->reads > b->reads;
}

static void entry_swap(uc_hot_entry_t *a, uc_hot_entry_t *b)
{
    uc_hot_entry_t t;

    memcpy(&t, a, sizeof(t));
    memcpy(a, b, sizeof(t));
    memcpy(b, &t, sizeof(t));
}

/* out[0..n) is a heap with the entry that ranks last on top. */
static void sift_down(uc_hot_entry_t *out, size_t i, size_t n)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && before(&out[m], &out[l])) {
            m = l;
        }
        if (l + 1 < n && before(&out[m], &out[l + 1])) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        entry_swap(&out[i], &out[m]);
        i = m;
    }
}

static void sift_up(uc_hot_entry_t *out, size_t i)
{
    while (i > 0 && before(&out[(i - 1) / 2], &out[i])) {
        entry_swap(&out[(i - 1) / 2], &out[i]);
        i = (i - 1) / 2;
    }
}

/*
 * The caller's array is the selection's heap: the shards are visited one
 * at a time (one lock held at a time); a counter enters while the heap is
 * not full, or when it ranks before the heap's top (the last so far), and
 * the heap is sorted in place at the end. O(m log cap), and only entries
 * that enter are copied.
 */
size_t uc__hot_top(uc__hot_t *h, uc_hot_entry_t *out, size_t cap)
{
    size_t total = 0, n = 0;

    if (h == NULL) {
        return 0;
    }
    if (out == NULL) {
        cap = 0;
    }
    for (size_t i = 0; i < UC__HOT_SHARDS; i++) {
        shard_t *s = &h->shards[i];
        pthread_mutex_lock(&s->mu);
        total += s->used;
        for (uint32_t c = 0; c < s->used && cap > 0; c++) {
            const counter_t *k = &s->ctr[c];
            uc_hot_entry_t *e;
            uint64_t reads = scaled(h, s->bkt[k->bucket].count);
            uint64_t error = scaled(h, k->error);
            if (n == cap) {
                uint64_t lt = out[0].reads - out[0].error;
                if (reads - error < lt ||
                    (reads - error == lt && reads <= out[0].reads)) {
                    continue;
                }
                e = &out[0];
            } else {
                e = &out[n];
            }
            memcpy(e->key, ckey(k), (size_t)k->klen + 1);
            e->reads = reads;
            e->error = error;
            if (n < cap) {
                sift_up(out, n++);
            } else {
                sift_down(out, 0, n);
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    for (size_t i = n; i-- > 1;) {
        entry_swap(&out[0], &out[i]);
        sift_down(out, 0, i);
    }
    return total;
}

size_t uc__hot_bytes(const uc__hot_t *h)
{
    size_t n;

    if (h == NULL) {
        return 0;
    }
    n = h->base_bytes;
    for (size_t i = 0; i < UC__HOT_SHARDS; i++) {
        n += atomic_load_explicit(&h->shards[i].bytes, memory_order_relaxed);
    }
    return n;
}

/* A min-heap of n values: heap[0] the smallest. */
static void u64_sift_down(uint64_t *a, size_t i, size_t n)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && a[l] < a[m]) {
            m = l;
        }
        if (l + 1 < n && a[l + 1] < a[m]) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        uint64_t t = a[i];
        a[i] = a[m];
        a[m] = t;
        i = m;
    }
}

static void u64_sift_up(uint64_t *a, size_t i)
{
    while (i > 0 && a[(i - 1) / 2] > a[i]) {
        uint64_t t = a[i];
        a[i] = a[(i - 1) / 2];
        a[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/*
 * The k-th largest lower bound (count - error) over the shards, through a
 * min-heap of k values (one shard lock at a time): 0 when the record holds
 * fewer than k keys. -1 when the heap's memory cannot be had.
 */
static int kth_lower(uc__hot_t *h, size_t k, uint64_t *out)
{
    size_t held = uc__hot_top(h, NULL, 0), n = 0;
    uint64_t *heap;

    if (held < k) {
        *out = 0;
        return 0;
    }
    heap = malloc(k * sizeof(*heap));
    if (heap == NULL) {
        return -1;
    }
    for (size_t i = 0; i < UC__HOT_SHARDS; i++) {
        shard_t *s = &h->shards[i];
        pthread_mutex_lock(&s->mu);
        for (uint32_t c = 0; c < s->used; c++) {
            uint64_t v = s->bkt[s->ctr[c].bucket].count - s->ctr[c].error;
            if (n < k) {
                heap[n] = v;
                u64_sift_up(heap, n++);
            } else if (v > heap[0]) {
                heap[0] = v;
                u64_sift_down(heap, 0, n);
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    /* Keys may have come in between: then fewer than k were seen. */
    *out = n < k ? 0 : heap[0];
    free(heap);
    return 0;
}

static uint64_t counted(uc__hot_t *h)
{
    uint64_t n = 0;

    for (size_t i = 0; i < UC__HOT_SHARDS; i++) {
        n += atomic_load_explicit(&h->shards[i].counted, memory_order_relaxed);
    }
    return n;
}

int uc__hot_is_top(uc__hot_t *h, const char *key, size_t klen, size_t k)
{
    uint64_t hv, lower = 0, thr, now, halvings;
    shard_t *s;
    uint32_t at, c;
    int held = 0;

    if (h == NULL || key == NULL || k == 0 || klen == 0 ||
        klen >= UC_HOT_KEY_MAX) {
        return 0;
    }
    hv = key_hash(h, key, klen);
    s = shard_of(h, hv);
    pthread_mutex_lock(&s->mu);
    if (s->slot != NULL && (c = find(s, hv, key, klen, &at)) != NIL) {
        held = 1;
        lower = s->bkt[s->ctr[c].bucket].count - s->ctr[c].error;
    }
    pthread_mutex_unlock(&s->mu);
    if (!held) {
        return 0;
    }
    /* thr_mu, then shard locks one at a time: no path takes them the
     * other way round. */
    pthread_mutex_lock(&h->thr_mu);
    now = counted(h);
    halvings = atomic_load(&h->halvings);
    if (!h->thr_valid || h->thr_k != k || now - h->thr_at >= THRESHOLD_EVERY ||
        h->thr_halvings != halvings) {
        if (kth_lower(h, k, &h->thr_count) != 0) {
            pthread_mutex_unlock(&h->thr_mu);
            return 0;
        }
        h->thr_valid = 1;
        h->thr_k = k;
        h->thr_at = now;
        h->thr_halvings = halvings;
    }
    thr = h->thr_count;
    pthread_mutex_unlock(&h->thr_mu);
    return lower >= thr;
}

/*
 * Divides every count and error by 2^down (counts rounded up, so a key held
 * keeps a count of at least 1), or multiplies them by 2^up. Dividing keeps
 * the order but may make neighbouring buckets equal, which are merged;
 * multiplying keeps them distinct. Either way uc__hot_is_top() computes its
 * k-th count again (the halvings counter moves).
 */
static void rescale(uc__hot_t *h, unsigned down, unsigned up)
{
    for (size_t i = 0; i < UC__HOT_SHARDS; i++) {
        shard_t *s = &h->shards[i];
        pthread_mutex_lock(&s->mu);
        for (uint32_t b = s->lo; b != NIL; b = s->bkt[b].next) {
            uint64_t n = s->bkt[b].count;
            s->bkt[b].count = ((n + (1ull << down) - 1) >> down) << up;
        }
        for (uint32_t c = 0; c < s->used; c++) {
            s->ctr[c].error = (s->ctr[c].error >> down) << up;
        }
        uint32_t b = s->lo;
        while (down > 0 && b != NIL && s->bkt[b].next != NIL) {
            uint32_t nb = s->bkt[b].next;
            if (s->bkt[nb].count != s->bkt[b].count) {
                b = nb;
                continue;
            }
            uint32_t c = s->bkt[nb].first;
            while (c != NIL) {
                uint32_t nx = s->ctr[c].next;
                counter_attach(s, c, b);
                c = nx;
            }
            s->bkt[nb].first = NIL;
            s->bkt[nb].size = 0;
            bucket_drop(s, nb);
        }
        pthread_mutex_unlock(&s->mu);
    }
    atomic_fetch_add(&h->halvings, 1);
}

void uc__hot_halve(uc__hot_t *h)
{
    if (h != NULL) {
        rescale(h, 1, 0);
    }
}

void uc__hot_adapt(uc__hot_t *h, uint64_t above)
{
    if (h == NULL || h->sample_mask == 0) {
        return;
    }
    h->above = above;
    h->tune_at_us = 0;
    /* Below the rate, to begin with: a new record has seen nothing, and
     * precision is what it lacks. */
    atomic_store(&h->mask, above > 0 ? 0u : h->sample_mask);
}

static unsigned log2u(uint32_t p)
{
    unsigned n = 0;

    while (p > 1) {
        p >>= 1;
        n++;
    }
    return n;
}

int uc__hot_tune(uc__hot_t *h, uint64_t now_us)
{
    uint64_t n, dt, rate;
    uint32_t mask;
    int changed = 0;

    if (h == NULL || h->above == 0) {
        return 0;
    }
    n = counted(h);
    if (h->tune_at_us == 0 || now_us < h->tune_at_us) {
        h->tune_at_us = now_us;
        h->tune_counted = n;
        return 0;
    }
    dt = now_us - h->tune_at_us;
    if (dt < TUNE_EVERY_US) {
        return 0;
    }
    mask = atomic_load(&h->mask);
    rate = (n - h->tune_counted) * ((uint64_t)mask + 1) * 1000000ull / dt;
    if (mask == 0 && rate > h->above) {
        /* Counts become sample units: one counted read stands for
         * sample_mask + 1 reads from now on. */
        rescale(h, log2u(h->sample_mask + 1), 0);
        atomic_store(&h->mask, h->sample_mask);
        changed = 1;
    } else if (mask != 0 && rate < h->above / 2) {
        rescale(h, 0, log2u(mask + 1));
        atomic_store(&h->mask, 0u);
        changed = 1;
    }
    h->tune_at_us = now_us;
    h->tune_counted = counted(h);
    return changed;
}
