/* SPDX-License-Identifier: MIT */
/*
 * The near cache (near.h): classes of UC__NEAR_SHARDS shards, each shard a
 * mutex, an open-addressing index of entry pointers with 16-bit hash tags
 * beside them (linear probing, at most 3/4 full, deletion by backward shift,
 * so no tombstones), the eviction policy's queues and an equal share of the
 * class's byte budget. A key's hash is a keyed SipHash-1-3 (the random key
 * keeps callers from aiming many keys at one probe run); its top bits pick
 * the shard, its low bits the slot, its middle bits the tag, the
 * invalidation generation slot and the ghost fingerprint.
 *
 * Why 16 shards per class: a hit holds its shard's lock for a few tens of
 * nanoseconds, so with the handful of threads a service runs per core two of
 * them meet on a lock about 1/16 of the time; fewer shards would raise that,
 * more would cut each shard's budget share (the largest entry is a quarter
 * of it, the small FIFO a tenth) and multiply the fixed cost of a class. The
 * count is fixed, so a new budget never rehashes anything.
 *
 * Entries are one allocation each (header, key, value, NUL) and reference
 * counted: the index holds one reference, every reader one more. An entry
 * leaves the index by eviction, replacement, invalidation or flush; if
 * readers still hold it, its bytes move from the shard's live count to its
 * dead count and leave that when the last reference goes, so the shard stays
 * charged for the memory until it is really freed. What an operation itself
 * drops last is collected under the lock and freed right after it
 * (near_trash_t), uncharged in between.
 *
 * Lifetime: every shard holds one reference on the handle, and an installed
 * entry one on its shard, so uc__near_destroy() may leave entries with
 * readers behind; the last release frees the handle.
 *
 * Tickets: one 64-bit clock orders all invalidations and flushes. An
 * invalidation takes the next clock value as its mark and raises the key's
 * generation slot to it, before it locks any shard; a flush raises the
 * class's or the handle's flush mark the same way. A ticket is the clock's
 * value; a put, under the shard lock, refuses when any of the three marks
 * exceeds it. Either the put's critical section comes first (the
 * invalidation then removes what it installed) or the mark is visible to it
 * (the mutex orders the mark's store before the put's load).
 */
/* For glibc's writer-preferring read-write locks (the shard locks). */
#define _GNU_SOURCE 1

#include "near.h"

#include <malloc.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "siphash.h"
#include "utxocache/error.h"

#define NEAR_CLASSES_MAX 4096
/* Index sizes: slots per shard, power of two. */
#define NEAR_SLOTS_MIN 16
#define NEAR_SLOTS_MAX ((size_t)1 << 24)
/* Slots examined for entries past stale_ms on every put into a shard. */
#define NEAR_SWEEP_SLOTS 4
/* Values up to this keep an entry's charge (header, key, value, and the
 * allocator's page rounding) within 32 bits. */
#define NEAR_VLEN_MAX ((size_t)UINT32_MAX - ((size_t)1 << 17))

typedef struct near_shard near_shard_t;

struct uc__near_entry {
    _Atomic uint32_t refs;
    uint32_t vlen;
    uint32_t charge; /* malloc_usable_size(), fixed at creation */
    uint16_t klen;
    /* The policy's: written under the shard's write lock, and bumped by
     * hits under its read lock (relaxed: a lost bump only ages the entry
     * a little sooner). */
    _Atomic uint8_t freq;
    uint8_t queue; /* the policy's, under the shard lock */
    uint64_t hash;
    /* The policy's queue links; the trash list once out of the cache. */
    uc__near_entry_t *prev;
    uc__near_entry_t *next;
    near_shard_t *shard; /* set at install; NULL for a private copy */
    uc__near_meta_t meta;
    /* value, NUL, key: the value at a fixed offset, so that a pointer to
     * it handed out as a shared result leads back to its entry */
    char data[];
};

_Static_assert(sizeof(struct uc__near_entry) == UC__NEAR_HEADER,
               "UC__NEAR_HEADER is the entry header's size");

/* ---- policy state (the functions are in the policy section) ------------ */

typedef struct {
    uc__near_entry_t *head; /* newest */
    uc__near_entry_t *tail; /* oldest */
    size_t bytes;
} near_fifo_t;

/* A ghost slot: a key-hash fingerprint and when it entered (ghost clock). */
typedef struct {
    uint32_t fp; /* 0: empty */
    uint32_t stamp;
} near_ghost_t;

typedef struct {
    near_fifo_t small;
    near_fifo_t main;
    near_ghost_t *ghost;
    size_t nghost; /* power of two, or 0 */
    uint32_t gclock;
} near_policy_t;

/* ---- shards, classes, the handle --------------------------------------- */

struct near_shard {
    /* Hits take it for reading; everything else for writing, writers
     * first, so a stream of hits never holds off an invalidation. */
    alignas(64) pthread_rwlock_t mu;
    /* The index: cap entry pointers, then (same allocation) a 16-bit tag
     * of each one's hash, 0 for an empty slot. A probe reads the compact
     * tags and follows a pointer only when its tag matches. */
    uc__near_entry_t **slots;
    uint16_t *tags;
    size_t cap; /* power of two, or 0 with slots NULL */
    size_t count;
    size_t live;  /* charge of the installed entries */
    size_t index; /* usable bytes of slots and ghost */
    size_t budget;
    size_t sweep;
    near_policy_t pol;
    _Atomic uint64_t hits, misses; /* bumped under the read lock */
    uint64_t inserts, evictions, expired, invalidations;
    /* Out of the cache, still referenced: released without the lock. */
    _Atomic size_t dead;
    /* 1 while the handle lives, plus one per installed entry not freed. */
    _Atomic size_t refs;
    uc__near_t *near;
};

typedef struct {
    near_shard_t shards[UC__NEAR_SHARDS];
    _Atomic size_t budget;
    _Atomic uint64_t flushed; /* mark of the last flush_class */
    _Atomic uint64_t refused;
    _Atomic uint64_t flushes;
} near_class_t;

struct uc__near {
    uint64_t k0, k1; /* hash key */
    size_t nclasses;
    near_class_t *classes;
    _Atomic uint64_t clock;
    _Atomic uint64_t flushed; /* mark of the last flush */
    _Atomic size_t refs;      /* one per shard not yet released */
    _Atomic uint64_t gen[UC__NEAR_GEN_SLOTS];
};

/* What an operation frees after unlocking: entries whose last reference it
 * dropped (linked through next) and replaced index arrays. */
typedef struct {
    uc__near_entry_t *entries;
    void *blocks[4];
    size_t nblocks;
} near_trash_t;

/* ---- hashing ------------------------------------------------------------ */

static uint64_t key_hash(const uc__near_t *n, const char *key, size_t klen)
{
    return uc__siphash13((const unsigned char *)key, klen, n->k0, n->k1);
}

static near_shard_t *shard_of(near_class_t *c, uint64_t hash)
{
    return &c->shards[hash >> 60 & (UC__NEAR_SHARDS - 1)];
}

static size_t gen_slot(uint64_t hash)
{
    return (size_t)(hash >> 32) & (UC__NEAR_GEN_SLOTS - 1);
}

static uint16_t hash_tag(uint64_t hash)
{
    uint16_t tag = (uint16_t)(hash >> 40);
    return tag != 0 ? tag : 1;
}

/* ---- entries ------------------------------------------------------------ */

static const char *entry_key(const uc__near_entry_t *e)
{
    return e->data + e->vlen + 1;
}

const char *uc__near_value(const uc__near_entry_t *e)
{
    return e->data;
}

uc__near_entry_t *uc__near_entry_of(const char *value)
{
    return (uc__near_entry_t *)(void *)(value -
                                        offsetof(uc__near_entry_t, data));
}

size_t uc__near_len(const uc__near_entry_t *e)
{
    return e->vlen;
}

const char *uc__near_key(const uc__near_entry_t *e, size_t *klen)
{
    if (klen != NULL) {
        *klen = e->klen;
    }
    return entry_key(e);
}

const uc__near_meta_t *uc__near_meta(const uc__near_entry_t *e)
{
    return &e->meta;
}

size_t uc__near_charge(const uc__near_entry_t *e)
{
    return e->charge;
}

/* A private entry (one reference, not installed) for (key, val); NULL on
 * allocation failure. Lengths were checked by the caller. */
static uc__near_entry_t *entry_new(uint64_t hash, const char *key, size_t klen,
                                   const char *val, size_t vlen,
                                   const uc__near_meta_t *meta)
{
    uc__near_entry_t *e = malloc(sizeof(*e) + klen + vlen + 1);
    size_t usable;

    if (e == NULL) {
        return NULL;
    }
    usable = malloc_usable_size(e);
    atomic_init(&e->refs, 1);
    e->vlen = (uint32_t)vlen;
    e->charge = (uint32_t)usable;
    e->klen = (uint16_t)klen;
    atomic_init(&e->freq, 0);
    e->queue = 0;
    e->hash = hash;
    e->prev = NULL;
    e->next = NULL;
    e->shard = NULL;
    e->meta = *meta;
    if (vlen > 0) {
        memcpy(e->data, val, vlen);
    }
    e->data[vlen] = '\0';
    if (klen > 0) {
        memcpy(e->data + vlen + 1, key, klen);
    }
    return e;
}

uc__near_entry_t *uc__near_entry_new(const char *key, size_t klen,
                                     const char *val, size_t vlen,
                                     const uc__near_meta_t *meta)
{
    if (klen > UC__NEAR_KEY_MAX || vlen > UINT32_MAX) {
        return NULL;
    }
    return entry_new(0, key, klen, val, vlen, meta);
}

static int entry_matches(const uc__near_entry_t *e, uint64_t hash,
                         const char *key, size_t klen)
{
    return e->hash == hash && e->klen == klen &&
           (klen == 0 || memcmp(entry_key(e), key, klen) == 0);
}

/* Nonzero when the entry's hard end has come at now_ms (0: never). */
static int past_stale(const uc__near_entry_t *e, uint64_t now_ms)
{
    return now_ms != 0 && e->meta.stale_ms != 0 && now_ms >= e->meta.stale_ms;
}

static void near_free(uc__near_t *n)
{
    free(n->classes);
    free(n);
}

static void shard_unref(near_shard_t *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        uc__near_t *n = s->near;
        if (atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) == 1) {
            near_free(n);
        }
    }
}

/* Frees an entry whose last reference a reader just gave back; one that
 * was installed stops being charged as dead only now. */
static void entry_free(uc__near_entry_t *e)
{
    near_shard_t *s = e->shard;
    size_t charge = e->charge;

    free(e);
    if (s != NULL) {
        atomic_fetch_sub_explicit(&s->dead, charge, memory_order_relaxed);
        shard_unref(s);
    }
}

void uc__near_retain(uc__near_entry_t *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void uc__near_release(uc__near_entry_t *e)
{
    if (e != NULL &&
        atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
        entry_free(e);
    }
}

static void trash_block(near_trash_t *t, void *p)
{
    if (p == NULL) {
        return;
    }
    /* An operation replaces the slots and the ghost at most twice; should
     * that change, freeing under the lock is slower but still right. */
    if (t->nblocks < sizeof(t->blocks) / sizeof(t->blocks[0])) {
        t->blocks[t->nblocks++] = p;
    } else {
        free(p);
    }
}

static void trash_empty(near_trash_t *t)
{
    while (t->entries != NULL) {
        uc__near_entry_t *e = t->entries;
        near_shard_t *s = e->shard;
        t->entries = e->next;
        free(e);
        shard_unref(s);
    }
    for (size_t i = 0; i < t->nblocks; i++) {
        free(t->blocks[i]);
    }
    t->nblocks = 0;
}

/* ---- eviction policy: S3-FIFO on bytes ---------------------------------- */
/*
 * Everything that knows the eviction policy is in this section: the entry's
 * prev/next/freq/queue fields, near_policy_t and the pol_* functions
 * (insert, replace, hit, remove, victim, resize). Another policy (SIEVE,
 * W-TinyLFU, ...) replaces this section alone; the shard code only calls
 * these functions, under the shard lock.
 *
 * How it works (Yang et al., SOSP '23), applied to bytes: a new key enters
 * the small FIFO unless the ghost remembers it, in which case it enters the
 * main FIFO. A hit only bumps a 2-bit saturating counter, so no hit moves an
 * entry. To make room, the small FIFO is evicted from while it holds more
 * than a tenth of the shard's budget (or main is empty): its oldest entry
 * moves to main if it was hit at least POL_PROMOTE times since it came in,
 * otherwise it is evicted and its hash goes to the ghost. Otherwise main's
 * oldest entry is evicted, unless its counter is non-zero: then it is put
 * back at the head with the counter decremented. An entry past stale_ms
 * met at a tail is evicted whatever its counter. One-time keys (a scan) thus
 * pass through the small FIFO without touching main.
 *
 * The ghost is a table of 4-slot buckets of 32-bit fingerprints stamped with
 * the ghost's insertion count; a fingerprint older than the ghost's slot
 * count has left the ghost, which thus holds the last nghost evictions from
 * small, about as many keys as the index holds entries. Within a bucket, the
 * oldest slot is overwritten. A false fingerprint match only admits a key
 * straight to main.
 */

enum { POL_SMALL = 0, POL_MAIN = 1 };
#define POL_FREQ_MAX 3
#define POL_PROMOTE 2
#define POL_SMALL_SHARE 10 /* the small FIFO's target: budget / this */
#define POL_BUCKET 4

static void fifo_push(near_fifo_t *q, uc__near_entry_t *e)
{
    e->prev = NULL;
    e->next = q->head;
    if (q->head != NULL) {
        q->head->prev = e;
    } else {
        q->tail = e;
    }
    q->head = e;
    q->bytes += e->charge;
}

static void fifo_unlink(near_fifo_t *q, uc__near_entry_t *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        q->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        q->tail = e->prev;
    }
    e->prev = NULL;
    e->next = NULL;
    q->bytes -= e->charge;
}

static near_fifo_t *fifo_of(near_policy_t *p, const uc__near_entry_t *e)
{
    return e->queue == POL_MAIN ? &p->main : &p->small;
}

static uint32_t ghost_fp(uint64_t hash)
{
    uint32_t fp = (uint32_t)(hash >> 20);
    return fp != 0 ? fp : 1;
}

static near_ghost_t *ghost_bucket(const near_policy_t *p, uint32_t fp)
{
    return &p->ghost[(fp & (p->nghost / POL_BUCKET - 1)) * POL_BUCKET];
}

static int ghost_alive(const near_policy_t *p, const near_ghost_t *g)
{
    return g->fp != 0 && (uint32_t)(p->gclock - g->stamp) < p->nghost;
}

/* Writes fp into its bucket: over its own older copy, an empty or expired
 * slot, or else the oldest. */
static void ghost_put(near_policy_t *p, uint32_t fp, uint32_t stamp)
{
    near_ghost_t *b = ghost_bucket(p, fp);
    near_ghost_t *victim = &b[0];

    for (unsigned i = 0; i < POL_BUCKET; i++) {
        if (b[i].fp == fp || !ghost_alive(p, &b[i])) {
            victim = &b[i];
            break;
        }
        if ((uint32_t)(p->gclock - b[i].stamp) >
            (uint32_t)(p->gclock - victim->stamp)) {
            victim = &b[i];
        }
    }
    victim->fp = fp;
    victim->stamp = stamp;
}

static void ghost_add(near_policy_t *p, uint64_t hash)
{
    if (p->nghost > 0) {
        ghost_put(p, ghost_fp(hash), p->gclock);
        p->gclock++;
    }
}

/* Nonzero (and forgets it) when the ghost holds hash. */
static int ghost_take(near_policy_t *p, uint64_t hash)
{
    uint32_t fp = ghost_fp(hash);
    near_ghost_t *b;

    if (p->nghost == 0) {
        return 0;
    }
    b = ghost_bucket(p, fp);
    for (unsigned i = 0; i < POL_BUCKET; i++) {
        if (b[i].fp == fp && ghost_alive(p, &b[i])) {
            b[i].fp = 0;
            return 1;
        }
    }
    return 0;
}

#define FREQ(e) atomic_load_explicit(&(e)->freq, memory_order_relaxed)
#define SET_FREQ(e, v)                                                         \
    atomic_store_explicit(&(e)->freq, (uint8_t)(v), memory_order_relaxed)

/* A new key's entry. */
static void pol_insert(near_policy_t *p, uc__near_entry_t *e)
{
    SET_FREQ(e, 0);
    e->queue = ghost_take(p, e->hash) ? POL_MAIN : POL_SMALL;
    fifo_push(fifo_of(p, e), e);
}

/* A new entry of a key already in: it takes the old one's place and count,
 * so a refresh neither ages nor rejuvenates the key. */
static void pol_replace(near_policy_t *p, uc__near_entry_t *old,
                        uc__near_entry_t *e)
{
    near_fifo_t *q = fifo_of(p, old);

    e->queue = old->queue;
    SET_FREQ(e, FREQ(old));
    e->prev = old->prev;
    e->next = old->next;
    if (e->prev != NULL) {
        e->prev->next = e;
    } else {
        q->head = e;
    }
    if (e->next != NULL) {
        e->next->prev = e;
    } else {
        q->tail = e;
    }
    q->bytes += e->charge;
    q->bytes -= old->charge;
    old->prev = NULL;
    old->next = NULL;
}

/* Under the read lock: several hits may race, and one bump is enough. */
static void pol_hit(uc__near_entry_t *e)
{
    uint8_t f = FREQ(e);
    if (f < POL_FREQ_MAX) {
        SET_FREQ(e, f + 1);
    }
}

static void pol_remove(near_policy_t *p, uc__near_entry_t *e)
{
    fifo_unlink(fifo_of(p, e), e);
}

/*
 * Picks the entry to evict (still queued; the caller removes it), moving
 * others as the policy says. The policy must hold at least one entry.
 */
static uc__near_entry_t *pol_victim(near_policy_t *p, size_t budget,
                                    uint64_t now_ms)
{
    for (;;) {
        uc__near_entry_t *e;
        if (p->small.tail != NULL &&
            (p->small.bytes > budget / POL_SMALL_SHARE ||
             p->main.tail == NULL)) {
            e = p->small.tail;
            if (FREQ(e) < POL_PROMOTE || past_stale(e, now_ms)) {
                ghost_add(p, e->hash);
                return e;
            }
            fifo_unlink(&p->small, e);
            e->queue = POL_MAIN;
            SET_FREQ(e, 0);
            fifo_push(&p->main, e);
            continue;
        }
        e = p->main.tail;
        if (FREQ(e) == 0 || past_stale(e, now_ms)) {
            return e;
        }
        SET_FREQ(e, FREQ(e) - 1);
        fifo_unlink(&p->main, e);
        fifo_push(&p->main, e);
    }
}

/* A ghost for an index of cap slots (half as many ghost slots, zeroed);
 * NULL for cap 0 or on allocation failure. */
static near_ghost_t *pol_ghost_new(size_t cap)
{
    return cap / 2 > 0 ? calloc(cap / 2, sizeof(near_ghost_t)) : NULL;
}

/* Moves what the ghost remembers into g (from pol_ghost_new(cap)), which
 * replaces it; the old array goes to t. */
static void pol_ghost_adopt(near_policy_t *p, near_ghost_t *g, size_t cap,
                            near_trash_t *t)
{
    near_policy_t np = *p;

    np.ghost = g;
    np.nghost = g != NULL ? cap / 2 : 0;
    for (size_t i = 0; g != NULL && i < p->nghost; i++) {
        if (ghost_alive(p, &p->ghost[i])) {
            ghost_put(&np, p->ghost[i].fp, p->ghost[i].stamp);
        }
    }
    trash_block(t, p->ghost);
    *p = np;
}

/* ---- the index (caller holds the shard lock) --------------------------- */

static size_t charged(near_shard_t *s)
{
    return s->live + s->index +
           atomic_load_explicit(&s->dead, memory_order_relaxed);
}

/* The slot holding key, or SIZE_MAX. */
static size_t slot_find(const near_shard_t *s, uint64_t hash, const char *key,
                        size_t klen)
{
    size_t mask = s->cap - 1;
    uint16_t tag = hash_tag(hash);

    if (s->cap == 0) {
        return SIZE_MAX;
    }
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        if (s->tags[i] == 0) {
            return SIZE_MAX;
        }
        if (s->tags[i] == tag && entry_matches(s->slots[i], hash, key, klen)) {
            return i;
        }
    }
}

static size_t slot_of_entry(const near_shard_t *s, const uc__near_entry_t *e)
{
    size_t mask = s->cap - 1;
    size_t i = (size_t)e->hash & mask;

    while (s->slots[i] != e) {
        i = (i + 1) & mask;
    }
    return i;
}

static void slot_insert(uc__near_entry_t **slots, uint16_t *tags, size_t cap,
                        uc__near_entry_t *e)
{
    size_t mask = cap - 1;
    size_t i = (size_t)e->hash & mask;

    while (tags[i] != 0) {
        i = (i + 1) & mask;
    }
    slots[i] = e;
    tags[i] = hash_tag(e->hash);
}

/* Empties slot i, shifting back the entries of its probe run that may move
 * (Knuth's algorithm R), so that lookups never need tombstones. */
static void slot_delete(near_shard_t *s, size_t i)
{
    size_t mask = s->cap - 1;
    size_t j = i;

    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (s->tags[j] == 0) {
            break;
        }
        home = (size_t)s->slots[j]->hash & mask;
        /* The entry at j may fill i unless its home lies cyclically in
         * (i, j]. */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) {
            continue;
        }
        s->slots[i] = s->slots[j];
        s->tags[i] = s->tags[j];
        i = j;
    }
    s->slots[i] = NULL;
    s->tags[i] = 0;
}

/* A new index of cap slots with its ghost, not yet in use. */
typedef struct {
    uc__near_entry_t **slots; /* the tags follow in the same block */
    near_ghost_t *ghost;
    size_t cap;
    size_t bytes; /* what it will be charged */
} near_index_t;

static uint16_t *tags_of(uc__near_entry_t **slots, size_t cap)
{
    return (uint16_t *)(void *)(slots + cap);
}

/* Allocates an index of cap slots (0: none). Returns 0, or -1 on
 * allocation failure with nothing allocated. */
static int index_new(near_index_t *ni, size_t cap)
{
    memset(ni, 0, sizeof(*ni));
    if (cap == 0) {
        return 0;
    }
    ni->slots = calloc(cap, sizeof(uc__near_entry_t *) + sizeof(uint16_t));
    ni->ghost = pol_ghost_new(cap);
    if (ni->slots == NULL || ni->ghost == NULL) {
        free(ni->slots);
        free(ni->ghost);
        return -1;
    }
    ni->cap = cap;
    ni->bytes = malloc_usable_size(ni->slots) + malloc_usable_size(ni->ghost);
    return 0;
}

/* Moves every entry (and the ghost) into ni, which replaces the index; the
 * old arrays go to t. */
static void index_adopt(near_shard_t *s, near_index_t *ni, near_trash_t *t)
{
    uint16_t *tags = ni->slots != NULL ? tags_of(ni->slots, ni->cap) : NULL;

    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i] != NULL) {
            slot_insert(ni->slots, tags, ni->cap, s->slots[i]);
        }
    }
    pol_ghost_adopt(&s->pol, ni->ghost, ni->cap, t);
    trash_block(t, s->slots);
    s->slots = ni->slots;
    s->tags = tags;
    s->cap = ni->cap;
    s->index = ni->bytes;
}

/* Rebuilds the index with cap slots (0: none); on allocation failure it
 * stays as it is, which costs probe time, not correctness. */
static void index_resize(near_shard_t *s, size_t cap, near_trash_t *t)
{
    near_index_t ni;

    if (index_new(&ni, cap) == 0) {
        index_adopt(s, &ni, t);
    }
}

/* Whether one more entry needs a larger index (load over 3/4). */
static int index_full(const near_shard_t *s)
{
    return (s->count + 1) * 4 > s->cap * 3;
}

/* Halves the index while it is under 1/8 full, and drops it when empty
 * with no budget; a failed allocation just keeps the larger one. */
static void index_trim(near_shard_t *s, near_trash_t *t)
{
    size_t cap = s->cap;

    if (s->count == 0 && (s->budget == 0 || charged(s) > s->budget)) {
        index_resize(s, 0, t);
        return;
    }
    while (cap > NEAR_SLOTS_MIN && s->count * 8 < cap) {
        cap /= 2;
    }
    if (cap != s->cap) {
        index_resize(s, cap, t);
    }
}

/* ---- shard operations (caller holds the shard lock) --------------------- */

/*
 * Drops the index's reference on e, which has just left the index and the
 * policy. When readers still hold it, its charge moves from live to dead
 * until the last of them lets go; otherwise it goes to t, to be freed as
 * soon as the lock is released, and is charged no more.
 */
static void unindex(near_shard_t *s, uc__near_entry_t *e, near_trash_t *t)
{
    s->live -= e->charge;
    /* Charged as dead before the reference goes, so that a reader's final
     * release never subtracts what was not added yet. */
    atomic_fetch_add_explicit(&s->dead, e->charge, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
        atomic_fetch_sub_explicit(&s->dead, e->charge, memory_order_relaxed);
        e->next = t->entries;
        t->entries = e;
    }
}

/* Takes the entry in slot i out of the cache. */
static void detach_at(near_shard_t *s, size_t i, near_trash_t *t)
{
    uc__near_entry_t *e = s->slots[i];

    slot_delete(s, i);
    pol_remove(&s->pol, e);
    s->count--;
    unindex(s, e, t);
}

/* Evicts until the shard's charge plus `need` fits its budget, or nothing
 * is left to evict. Returns nonzero when it fits. */
static int make_room(near_shard_t *s, size_t need, uint64_t now_ms,
                     near_trash_t *t)
{
    while (charged(s) + need > s->budget) {
        uc__near_entry_t *v;
        if (s->count == 0) {
            return 0;
        }
        v = pol_victim(&s->pol, s->budget, now_ms);
        if (past_stale(v, now_ms)) {
            s->expired++;
        } else {
            s->evictions++;
        }
        detach_at(s, slot_of_entry(s, v), t);
    }
    return 1;
}

/* Drops entries past stale_ms from the next few slots, so memory held by
 * keys nobody reads again comes back before anything live is evicted. */
static void sweep(near_shard_t *s, uint64_t now_ms, near_trash_t *t)
{
    if (now_ms == 0 || s->cap == 0) {
        return;
    }
    for (unsigned k = 0; k < NEAR_SWEEP_SLOTS; k++) {
        size_t i = s->sweep & (s->cap - 1);
        uc__near_entry_t *e = s->slots[i];
        if (e != NULL && past_stale(e, now_ms)) {
            /* The backward shift may refill slot i: look at it again. */
            detach_at(s, i, t);
            s->expired++;
        } else {
            s->sweep++;
        }
    }
}

/* Drops every entry of the shard and its index. */
static void shard_clear(near_shard_t *s, near_trash_t *t)
{
    for (size_t i = 0; i < s->cap; i++) {
        while (s->slots[i] != NULL) {
            detach_at(s, i, t);
        }
    }
    index_resize(s, 0, t); /* freeing cannot fail */
}

/* Nonzero when an invalidation or flush marked after ticket concerns
 * (cls, hash). */
static int ticket_outdated(uc__near_t *n, near_class_t *c, uint64_t hash,
                           uint64_t ticket)
{
    return atomic_load(&n->gen[gen_slot(hash)]) > ticket ||
           atomic_load(&n->flushed) > ticket ||
           atomic_load(&c->flushed) > ticket;
}

/*
 * Installs e (which has one reference, the caller's) in shard s, replacing
 * the key's entry. Returns 1 installed (the index now holds the reference e
 * came with), 0 refused, UC_ENOMEM.
 *
 * Room is made before e goes in, so eviction never meets e. An index that
 * must grow is allocated first, so that its exact charge is part of the
 * room made.
 */
static int install(uc__near_t *n, near_class_t *c, near_shard_t *s,
                   uc__near_entry_t *e, uint64_t ticket, uint64_t now_ms,
                   near_trash_t *t)
{
    near_index_t ni = {0};
    size_t grow = 0;
    size_t i;

    if (s->budget == 0 || e->charge > s->budget / UC__NEAR_ENTRY_SHARE ||
        past_stale(e, now_ms) || ticket_outdated(n, c, e->hash, ticket)) {
        return 0;
    }
    sweep(s, now_ms, t);
    i = slot_find(s, e->hash, entry_key(e), e->klen);
    if (i == SIZE_MAX && index_full(s)) {
        if (s->cap >= NEAR_SLOTS_MAX) {
            return 0;
        }
        if (index_new(&ni, s->cap == 0 ? NEAR_SLOTS_MIN : s->cap * 2) == 0) {
            grow = ni.bytes - s->index;
        } else if (s->cap == 0 || (s->count + 1) * 8 > s->cap * 7) {
            return UC_ENOMEM;
        }
    }
    if (s->index + grow + atomic_load_explicit(&s->dead, memory_order_relaxed) +
            e->charge >
        s->budget) {
        /* Readers hold evicted entries worth the room: no amount of
         * evicting would make it fit. */
        trash_block(t, ni.slots);
        trash_block(t, ni.ghost);
        return 0;
    }
    /* Cannot fail: with every live entry gone the room checked above is
     * left (dead bytes only shrink without the lock). */
    make_room(s, e->charge + grow, now_ms, t);
    if (ni.slots != NULL) {
        index_adopt(s, &ni, t);
    }
    /* Eviction may have taken the old entry. */
    i = i == SIZE_MAX ? SIZE_MAX : slot_find(s, e->hash, entry_key(e), e->klen);
    if (i != SIZE_MAX) {
        uc__near_entry_t *old = s->slots[i];
        s->slots[i] = e;
        pol_replace(&s->pol, old, e);
        s->live += e->charge;
        unindex(s, old, t);
    } else {
        slot_insert(s->slots, s->tags, s->cap, e);
        pol_insert(&s->pol, e);
        s->count++;
        s->live += e->charge;
    }
    e->shard = s;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    s->inserts++;
    return 1;
}

/* ---- the API ------------------------------------------------------------ */

static near_class_t *class_of(uc__near_t *n, size_t cls)
{
    return n != NULL && cls < n->nclasses ? &n->classes[cls] : NULL;
}

uc__near_entry_t *uc__near_get(uc__near_t *n, size_t cls, const char *key,
                               size_t klen, uint64_t now_ms)
{
    near_class_t *c = class_of(n, cls);
    near_trash_t t = {0};
    uc__near_entry_t *e = NULL;
    near_shard_t *s;
    uint64_t h;
    size_t i;
    int expired = 0;

    if (c == NULL || (key == NULL && klen > 0)) {
        return NULL;
    }
    h = key_hash(n, key, klen);
    s = shard_of(c, h);
    pthread_rwlock_rdlock(&s->mu);
    i = slot_find(s, h, key, klen);
    if (i != SIZE_MAX) {
        e = s->slots[i];
        if (past_stale(e, now_ms)) {
            e = NULL;
            expired = 1;
        } else {
            pol_hit(e);
            atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        }
    }
    atomic_fetch_add_explicit(e != NULL ? &s->hits : &s->misses, 1,
                              memory_order_relaxed);
    pthread_rwlock_unlock(&s->mu);
    if (expired) {
        /* Past its grace: out it goes, under the write lock (it may have
         * been replaced or removed in between). */
        pthread_rwlock_wrlock(&s->mu);
        i = slot_find(s, h, key, klen);
        if (i != SIZE_MAX && past_stale(s->slots[i], now_ms)) {
            detach_at(s, i, &t);
            s->expired++;
        }
        pthread_rwlock_unlock(&s->mu);
        trash_empty(&t);
    }
    return e;
}

uint64_t uc__near_ticket(uc__near_t *n)
{
    return atomic_load(&n->clock);
}

int uc__near_put(uc__near_t *n, size_t cls, const char *key, size_t klen,
                 uint64_t ticket, const char *val, size_t vlen,
                 const uc__near_meta_t *meta, uint64_t now_ms,
                 uc__near_entry_t **out)
{
    near_class_t *c = class_of(n, cls);
    near_trash_t t = {0};
    uc__near_entry_t *e;
    near_shard_t *s;
    uint64_t h;
    int rc;

    if (c == NULL || (key == NULL && klen > 0) || (val == NULL && vlen > 0) ||
        meta == NULL) {
        return UC_EINVAL;
    }
    if (klen > UC__NEAR_KEY_MAX || vlen > NEAR_VLEN_MAX) {
        return UC_ETOOBIG;
    }
    h = key_hash(n, key, klen);
    /* Nobody to hand a copy to: skip building one that cannot go in. */
    if (out == NULL &&
        (atomic_load_explicit(&c->budget, memory_order_relaxed) == 0 ||
         ticket_outdated(n, c, h, ticket))) {
        atomic_fetch_add_explicit(&c->refused, 1, memory_order_relaxed);
        return 0;
    }
    e = entry_new(h, key, klen, val, vlen, meta);
    if (e == NULL) {
        return UC_ENOMEM;
    }
    s = shard_of(c, h);
    pthread_rwlock_wrlock(&s->mu);
    rc = install(n, c, s, e, ticket, now_ms, &t);
    if (rc == 1 && out != NULL) {
        /* Under the lock: once it is unlocked, e may be evicted and freed. */
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&s->mu);
    trash_empty(&t);
    if (rc < 0) {
        free(e);
        return rc;
    }
    if (rc == 0) {
        atomic_fetch_add_explicit(&c->refused, 1, memory_order_relaxed);
        if (out == NULL) {
            free(e);
            return 0;
        }
    }
    if (out != NULL) {
        *out = e;
    }
    return rc;
}

/* Raises *a to at least v (concurrent raisers may arrive in any order). */
static void raise_mark(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

static uint64_t next_mark(uc__near_t *n)
{
    return atomic_fetch_add(&n->clock, 1) + 1;
}

void uc__near_invalidate(uc__near_t *n, const char *key, size_t klen)
{
    uint64_t h;

    if (n == NULL || (key == NULL && klen > 0)) {
        return;
    }
    h = key_hash(n, key, klen);
    /* The mark goes first: a put that locks its shard after the removal
     * below must see it, or it could install the value being invalidated
     * after that value was removed. */
    raise_mark(&n->gen[gen_slot(h)], next_mark(n));
    for (size_t k = 0; k < n->nclasses; k++) {
        near_shard_t *s = shard_of(&n->classes[k], h);
        near_trash_t t = {0};
        size_t i;
        pthread_rwlock_wrlock(&s->mu);
        i = slot_find(s, h, key, klen);
        if (i != SIZE_MAX) {
            detach_at(s, i, &t);
            s->invalidations++;
            index_trim(s, &t);
        }
        pthread_rwlock_unlock(&s->mu);
        trash_empty(&t);
    }
}

static void class_clear(near_class_t *c)
{
    atomic_fetch_add_explicit(&c->flushes, 1, memory_order_relaxed);
    for (unsigned i = 0; i < UC__NEAR_SHARDS; i++) {
        near_shard_t *s = &c->shards[i];
        near_trash_t t = {0};
        pthread_rwlock_wrlock(&s->mu);
        shard_clear(s, &t);
        pthread_rwlock_unlock(&s->mu);
        trash_empty(&t);
    }
}

void uc__near_flush(uc__near_t *n)
{
    if (n == NULL) {
        return;
    }
    raise_mark(&n->flushed, next_mark(n));
    for (size_t k = 0; k < n->nclasses; k++) {
        class_clear(&n->classes[k]);
    }
}

void uc__near_flush_class(uc__near_t *n, size_t cls)
{
    near_class_t *c = class_of(n, cls);

    if (c != NULL) {
        raise_mark(&c->flushed, next_mark(n));
        class_clear(c);
    }
}

int uc__near_set_budget(uc__near_t *n, size_t cls, size_t bytes)
{
    near_class_t *c = class_of(n, cls);

    if (c == NULL) {
        return UC_EINVAL;
    }
    atomic_store_explicit(&c->budget, bytes, memory_order_relaxed);
    for (unsigned i = 0; i < UC__NEAR_SHARDS; i++) {
        near_shard_t *s = &c->shards[i];
        near_trash_t t = {0};
        pthread_rwlock_wrlock(&s->mu);
        s->budget = bytes / UC__NEAR_SHARDS;
        if (s->budget == 0) {
            shard_clear(s, &t);
        } else {
            make_room(s, 0, 0, &t);
            index_trim(s, &t);
        }
        pthread_rwlock_unlock(&s->mu);
        trash_empty(&t);
    }
    return UC_OK;
}

void uc__near_stats(uc__near_t *n, size_t cls, uc__near_stats_t *out)
{
    near_class_t *c = class_of(n, cls);
    uc__near_stats_t st;

    if (out == NULL) {
        return;
    }
    memset(&st, 0, sizeof(st));
    if (c == NULL) {
        *out = st;
        return;
    }
    st.budget = atomic_load_explicit(&c->budget, memory_order_relaxed);
    st.refused = atomic_load_explicit(&c->refused, memory_order_relaxed);
    st.flushes = atomic_load_explicit(&c->flushes, memory_order_relaxed);
    for (unsigned i = 0; i < UC__NEAR_SHARDS; i++) {
        near_shard_t *s = &c->shards[i];
        size_t dead;
        pthread_rwlock_wrlock(&s->mu);
        dead = atomic_load_explicit(&s->dead, memory_order_relaxed);
        st.bytes += s->live + s->index + dead;
        st.index_bytes += s->index;
        st.dead_bytes += dead;
        st.entries += s->count;
        st.hits += atomic_load(&s->hits);
        st.misses += atomic_load(&s->misses);
        st.inserts += s->inserts;
        st.evictions += s->evictions;
        st.expired += s->expired;
        st.invalidations += s->invalidations;
        pthread_rwlock_unlock(&s->mu);
    }
    *out = st;
}

/* Fills the hash key from the kernel's generator, or, if that is not
 * available, from the clock and an address (weaker, never fatal). */
static void seed(uc__near_t *n)
{
    uint64_t k[2];
    if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] =
            (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec;
        k[1] = (uint64_t)(uintptr_t)n * 0xc2b2ae3d27d4eb4fULL ^ k[0];
    }
    n->k0 = k[0];
    n->k1 = k[1];
}

int uc__near_create(size_t nclasses, uc__near_t **out)
{
    uc__near_t *n;
    size_t k;
    unsigned i = 0;

    if (out == NULL || nclasses == 0 || nclasses > NEAR_CLASSES_MAX) {
        return UC_EINVAL;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return UC_ENOMEM;
    }
    n->classes =
        aligned_alloc(alignof(near_class_t), nclasses * sizeof(near_class_t));
    if (n->classes == NULL) {
        free(n);
        return UC_ENOMEM;
    }
    memset(n->classes, 0, nclasses * sizeof(near_class_t));
    n->nclasses = nclasses;
    seed(n);
    /* Writers first: with glibc's default (readers first), two threads of
     * back-to-back hits could hold off an invalidation indefinitely. */
    pthread_rwlockattr_t ma;
    if (pthread_rwlockattr_init(&ma) != 0) {
        near_free(n);
        return UC_ENOMEM;
    }
#ifdef PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP
    pthread_rwlockattr_setkind_np(&ma,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    for (k = 0; k < nclasses; k++) {
        for (i = 0; i < UC__NEAR_SHARDS; i++) {
            near_shard_t *s = &n->classes[k].shards[i];
            if (pthread_rwlock_init(&s->mu, &ma) != 0) {
                pthread_rwlockattr_destroy(&ma);
                goto unwind;
            }
            atomic_init(&s->refs, 1);
            s->near = n;
        }
    }
    pthread_rwlockattr_destroy(&ma);
    atomic_init(&n->refs, nclasses * UC__NEAR_SHARDS);
    *out = n;
    return UC_OK;

unwind:
    /* Shards [0, k * UC__NEAR_SHARDS + i) have a mutex. */
    for (size_t j = 0; j < k * UC__NEAR_SHARDS + i; j++) {
        pthread_rwlock_destroy(
            &n->classes[j / UC__NEAR_SHARDS].shards[j % UC__NEAR_SHARDS].mu);
    }
    near_free(n);
    return UC_ENOMEM;
}

void uc__near_destroy(uc__near_t *n)
{
    size_t total;

    if (n == NULL) {
        return;
    }
    total = n->nclasses * UC__NEAR_SHARDS;
    for (size_t j = 0; j < total; j++) {
        near_shard_t *s =
            &n->classes[j / UC__NEAR_SHARDS].shards[j % UC__NEAR_SHARDS];
        near_trash_t t = {0};
        shard_clear(s, &t);
        trash_empty(&t);
        pthread_rwlock_destroy(&s->mu);
    }
    /* Last, as the last shard reference frees n (and the shards). */
    for (size_t j = 0; j < total; j++) {
        shard_unref(
            &n->classes[j / UC__NEAR_SHARDS].shards[j % UC__NEAR_SHARDS]);
    }
}
