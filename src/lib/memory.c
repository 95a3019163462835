/* SPDX-License-Identifier: MIT */
/*
 * The in-process backend: a byte-budgeted LRU store with millisecond TTLs,
 * used when no Redis is configured (and later as the near cache in front of
 * it). The store is split into up to MEM_SHARDS_MAX shards, each with its own
 * mutex, chained hash table, LRU lists and an equal share of the byte budget,
 * so that threads touching different keys rarely wait on each other. A key's
 * shard comes from the top bits of a keyed SipHash of the key, its bucket from
 * the low bits; the random hash key keeps callers from aiming many keys at one
 * chain. Expired entries are never returned: they are dropped when touched, by
 * a small sweep of a few buckets on every write, and by eviction (counted as
 * expired, not evicted). The conditional stores (add, cas) compare and store
 * under the shard's lock, which is what makes the core's leases atomic here.
 * A second LRU list, evicted only after the first, is kept for entries that
 * must outlive plain values (none are stored so today).
 */
#include <fnmatch.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "siphash.h"
#include "store.h"

#define MEM_SHARDS_MAX 16
/* Budgets below MEM_SHARDS_MAX * this use fewer shards (down to one), so a
 * small store keeps an exact LRU order and can hold values of its whole size
 * rather than a sliver of it. */
#define MEM_SHARD_MIN_BYTES ((size_t)1 << 20)
#define MEM_DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define MEM_INITIAL_BUCKETS 16
#define MEM_MAX_BUCKETS ((size_t)1 << 30)
/* Buckets examined for expired entries on each write to a shard. */
#define MEM_SWEEP_BUCKETS 4

enum { LRU_VALUES = 0, LRU_COUNTERS = 1 };

typedef struct mem_entry {
    struct mem_entry *hnext; /* bucket chain; the free list once detached */
    struct mem_entry *prev;  /* LRU neighbours; head is most recently used */
    struct mem_entry *next;
    uint64_t hash;
    uint64_t expires_us; /* 0: never */
    size_t klen;
    size_t vlen;
    int is_counter;
    char data[]; /* key, NUL, value, NUL: the NULs let fnmatch and callers
                    read the bytes as strings */
} mem_entry_t;

typedef struct {
    mem_entry_t *head;
    mem_entry_t *tail;
} mem_list_t;

typedef struct {
    pthread_mutex_t lock;
    mem_entry_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    size_t used; /* bytes charged by entry_cost() */
    mem_list_t lru[2];
    size_t sweep_cursor;
    uint64_t evicted;
    uint64_t expired;
    uint64_t hits;
    uint64_t misses;
} mem_shard_t;

typedef struct {
    uc__backend_t base;
    uint64_t k0, k1; /* hash key */
    size_t max_bytes;
    size_t shard_budget;
    unsigned nshards; /* power of two, <= MEM_SHARDS_MAX */
    mem_shard_t shards[MEM_SHARDS_MAX];
} mem_backend_t;

/* ---- hashing ------------------------------------------------------------ */

static uint64_t key_hash(const mem_backend_t *m, const char *key, size_t klen)
{
    return uc__siphash13((const unsigned char *)key, klen, m->k0, m->k1);
}

static unsigned shard_index(const mem_backend_t *m, uint64_t hash)
{
    return (unsigned)(hash >> 60) & (m->nshards - 1);
}

/* ---- entries ------------------------------------------------------------ */

/*
 * Bytes charged for one entry: key, value, their NULs, the entry header, and
 * the bucket slot and allocator header every entry costs on top. Returns 0
 * when the sum would overflow.
 */
static size_t entry_cost(size_t klen, size_t vlen)
{
    size_t fixed = sizeof(mem_entry_t) + 2 + 2 * sizeof(void *);
    if (klen > SIZE_MAX - fixed || vlen > SIZE_MAX - fixed - klen) {
        return 0;
    }
    return fixed + klen + vlen;
}

static size_t cost_of(const mem_entry_t *e)
{
    return entry_cost(e->klen, e->vlen);
}

static const char *entry_value(const mem_entry_t *e)
{
    return e->data + e->klen + 1;
}

/*
 * Builds a detached entry for (key, val). Returns UC_OK, UC_ETOOBIG when it
 * could never fit in a shard, or UC_ENOMEM; the entry is the caller's until
 * it is inserted.
 */
static int entry_new(const mem_backend_t *m, const char *key, size_t klen,
                     const char *val, size_t vlen, uint64_t expires_us,
                     int is_counter, mem_entry_t **out)
{
    size_t cost = entry_cost(klen, vlen);
    mem_entry_t *e;

    if (cost == 0 || cost > m->shard_budget) {
        return UC_ETOOBIG;
    }
    e = malloc(sizeof(*e) + klen + vlen + 2);
    if (e == NULL) {
        return UC_ENOMEM;
    }
    memset(e, 0, sizeof(*e));
    e->hash = key_hash(m, key, klen);
    e->expires_us = expires_us;
    e->klen = klen;
    e->vlen = vlen;
    e->is_counter = is_counter;
    if (klen > 0) {
        memcpy(e->data, key, klen);
    }
    e->data[klen] = '\0';
    if (vlen > 0) {
        memcpy(e->data + klen + 1, val, vlen);
    }
    e->data[klen + 1 + vlen] = '\0';
    *out = e;
    return UC_OK;
}

/* Frees a chain of detached entries linked through hnext. */
static void free_chain(mem_entry_t *e)
{
    while (e != NULL) {
        mem_entry_t *next = e->hnext;
        free(e);
        e = next;
    }
}

static int expired_at(const mem_entry_t *e, uint64_t now)
{
    return e->expires_us != 0 && now >= e->expires_us;
}

/* Absolute expiry for a TTL; 0 (never) for ttl_ms == 0, saturating. */
static uint64_t expiry_for(uint64_t now, uint64_t ttl_ms)
{
    if (ttl_ms == 0) {
        return 0;
    }
    if (ttl_ms > (UINT64_MAX - 1 - now) / 1000) {
        return UINT64_MAX - 1;
    }
    return now + ttl_ms * 1000;
}

/* ---- shard internals (caller holds the shard lock) ----------------------- */

static void lru_unlink(mem_shard_t *s, mem_entry_t *e)
{
    mem_list_t *l = &s->lru[e->is_counter ? LRU_COUNTERS : LRU_VALUES];
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        l->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        l->tail = e->prev;
    }
    e->prev = NULL;
    e->next = NULL;
}

static void lru_push_head(mem_shard_t *s, mem_entry_t *e)
{
    mem_list_t *l = &s->lru[e->is_counter ? LRU_COUNTERS : LRU_VALUES];
    e->prev = NULL;
    e->next = l->head;
    if (l->head != NULL) {
        l->head->prev = e;
    } else {
        l->tail = e;
    }
    l->head = e;
}

static void lru_touch(mem_shard_t *s, mem_entry_t *e)
{
    lru_unlink(s, e);
    lru_push_head(s, e);
}

/* Unlinks the entry in slot *pp from the table and its list and moves it to
 * the *dead chain, to be freed once the lock is released. */
static void detach_at(mem_shard_t *s, mem_entry_t **pp, mem_entry_t **dead)
{
    mem_entry_t *e = *pp;
    *pp = e->hnext;
    lru_unlink(s, e);
    s->used -= cost_of(e);
    s->count--;
    e->hnext = *dead;
    *dead = e;
}

static mem_entry_t **slot_of(mem_shard_t *s, uint64_t hash, const char *key,
                             size_t klen)
{
    mem_entry_t **pp = &s->buckets[hash & (s->nbuckets - 1)];
    while (*pp != NULL) {
        mem_entry_t *e = *pp;
        if (e->hash == hash && e->klen == klen &&
            (klen == 0 || memcmp(e->data, key, klen) == 0)) {
            return pp;
        }
        pp = &e->hnext;
    }
    return NULL;
}

static void detach(mem_shard_t *s, mem_entry_t *e, mem_entry_t **dead)
{
    mem_entry_t **pp = slot_of(s, e->hash, e->data, e->klen);
    detach_at(s, pp, dead);
}

/*
 * Finds the live entry for a key. An expired one is detached onto *dead and
 * counted, so it is never returned. Does not touch the LRU order.
 */
static mem_entry_t *find_live(mem_shard_t *s, uint64_t now, uint64_t hash,
                              const char *key, size_t klen, mem_entry_t **dead)
{
    mem_entry_t **pp = slot_of(s, hash, key, klen);
    if (pp == NULL) {
        return NULL;
    }
    if (expired_at(*pp, now)) {
        detach_at(s, pp, dead);
        s->expired++;
        return NULL;
    }
    return *pp;
}

/* Doubles the bucket array; on allocation failure the table just stays
 * denser, which costs time, not correctness. */
static void maybe_grow(mem_shard_t *s)
{
    size_t n = s->nbuckets * 2;
    mem_entry_t **nb;

    if (s->count <= s->nbuckets || s->nbuckets >= MEM_MAX_BUCKETS) {
        return;
    }
    nb = calloc(n, sizeof(*nb));
    if (nb == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nbuckets; i++) {
        mem_entry_t *e = s->buckets[i];
        while (e != NULL) {
            mem_entry_t *next = e->hnext;
            size_t j = e->hash & (n - 1);
            e->hnext = nb[j];
            nb[j] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = nb;
    s->nbuckets = n;
}

/* Drops expired entries from the next few buckets, so memory held by keys
 * nobody reads again comes back without waiting for eviction. */
static void sweep(mem_shard_t *s, uint64_t now, mem_entry_t **dead)
{
    for (unsigned i = 0; i < MEM_SWEEP_BUCKETS; i++) {
        size_t b = s->sweep_cursor++ & (s->nbuckets - 1);
        mem_entry_t **pp = &s->buckets[b];
        while (*pp != NULL) {
            if (expired_at(*pp, now)) {
                detach_at(s, pp, dead);
                s->expired++;
            } else {
                pp = &(*pp)->hnext;
            }
        }
    }
}

/*
 * Evicts until the shard fits its budget: plain values from the LRU tail
 * first, counters only when no other value is left, never `keep` (which fits
 * on its own because entry_new() checked its cost).
 */
static void evict(mem_shard_t *s, size_t budget, uint64_t now,
                  const mem_entry_t *keep, mem_entry_t **dead)
{
    while (s->used > budget) {
        mem_entry_t *victim = s->lru[LRU_VALUES].tail;
        if (victim == keep) {
            victim = victim->prev;
        }
        if (victim == NULL) {
            victim = s->lru[LRU_COUNTERS].tail;
            if (victim == keep) {
                victim = victim->prev;
            }
        }
        if (victim == NULL) {
            return;
        }
        if (expired_at(victim, now)) {
            s->expired++;
        } else {
            s->evicted++;
        }
        detach(s, victim, dead);
    }
}

/* Inserts `e`, replacing any entry with its key, then evicts to budget. */
static void store(mem_backend_t *m, mem_shard_t *s, uint64_t now,
                  mem_entry_t *e, mem_entry_t **dead)
{
    mem_entry_t **pp = slot_of(s, e->hash, e->data, e->klen);
    size_t b;

    if (pp != NULL) {
        detach_at(s, pp, dead);
    }
    b = e->hash & (s->nbuckets - 1);
    e->hnext = s->buckets[b];
    s->buckets[b] = e;
    lru_push_head(s, e);
    s->used += cost_of(e);
    s->count++;
    sweep(s, now, dead);
    evict(s, m->shard_budget, now, e, dead);
    maybe_grow(s);
}

/* ---- locking ------------------------------------------------------------ */

static mem_backend_t *mem_of(uc__backend_t *b)
{
    return (mem_backend_t *)b;
}

/* ---- operations --------------------------------------------------------- */

/* Copies a value out as a malloc()ed NUL-terminated string. */
static char *copy_value(const mem_entry_t *e)
{
    char *v = malloc(e->vlen + 1);
    if (v != NULL) {
        memcpy(v, entry_value(e), e->vlen + 1);
    }
    return v;
}

/*
 * Reads one key into a fresh copy and refreshes its LRU position. Returns
 * UC_OK, UC_MISS or UC_ENOMEM (the store is unchanged but for the order).
 * bounded (get_max): an empty value is UC_MISS and one longer than max is
 * UC_ETOOBIG, nothing copied.
 */
static int get_one(mem_backend_t *m, uint64_t now, const char *key, size_t klen,
                   int bounded, size_t max, char **val, size_t *len)
{
    uint64_t h = key_hash(m, key, klen);
    mem_shard_t *s = &m->shards[shard_index(m, h)];
    mem_entry_t *dead = NULL;
    mem_entry_t *e;
    int rc = UC_MISS;

    pthread_mutex_lock(&s->lock);
    e = find_live(s, now, h, key, klen, &dead);
    if (e == NULL || (bounded && e->vlen == 0)) {
        s->misses++;
    } else if (bounded && e->vlen > max) {
        rc = UC_ETOOBIG;
    } else {
        char *v = copy_value(e);
        if (v == NULL) {
            rc = UC_ENOMEM;
        } else {
            lru_touch(s, e);
            s->hits++;
            *val = v;
            *len = e->vlen;
            rc = UC_OK;
        }
    }
    pthread_mutex_unlock(&s->lock);
    free_chain(dead);
    return rc;
}

static int mem_get(uc__backend_t *b, const char *key, size_t klen, char **val,
                   size_t *len)
{
    if (key == NULL || val == NULL || len == NULL) {
        return UC_EINVAL;
    }
    return get_one(mem_of(b), uc__now_us(b->env), key, klen, 0, 0, val, len);
}

static int mem_set(uc__backend_t *b, const char *key, size_t klen,
                   const char *val, size_t len, uint64_t ttl_ms)
{
    mem_backend_t *m = mem_of(b);
    uint64_t now;
    mem_entry_t *e = NULL;
    mem_entry_t *dead = NULL;
    mem_shard_t *s;
    int rc;

    if (key == NULL || (val == NULL && len > 0)) {
        return UC_EINVAL;
    }
    now = uc__now_us(b->env);
    rc = entry_new(m, key, klen, val, len, expiry_for(now, ttl_ms), 0, &e);
    if (rc != UC_OK) {
        return rc;
    }
    s = &m->shards[shard_index(m, e->hash)];
    pthread_mutex_lock(&s->lock);
    store(m, s, now, e, &dead);
    pthread_mutex_unlock(&s->lock);
    free_chain(dead);
    return UC_OK;
}

static int mem_del(uc__backend_t *b, const char *key, size_t klen, int *existed)
{
    mem_backend_t *m = mem_of(b);
    uint64_t now;
    uint64_t h;
    mem_shard_t *s;
    mem_entry_t *dead = NULL;
    mem_entry_t *e;
    int found;

    if (key == NULL) {
        return UC_EINVAL;
    }
    now = uc__now_us(b->env);
    h = key_hash(m, key, klen);
    s = &m->shards[shard_index(m, h)];
    pthread_mutex_lock(&s->lock);
    e = find_live(s, now, h, key, klen, &dead);
    found = e != NULL;
    if (found) {
        detach(s, e, &dead);
    }
    pthread_mutex_unlock(&s->lock);
    free_chain(dead);
    if (existed != NULL) {
        *existed = found;
    }
    return UC_OK;
}

/* Looks a key up without copying it or refreshing its LRU position (a probe
 * is not a use). Returns UC_OK, UC_MISS; *ttl_ms gets the remaining time. */
static int probe(uc__backend_t *b, const char *key, size_t klen,
                 int64_t *ttl_ms)
{
    mem_backend_t *m = mem_of(b);
    uint64_t now = uc__now_us(b->env);
    uint64_t h = key_hash(m, key, klen);
    mem_shard_t *s = &m->shards[shard_index(m, h)];
    mem_entry_t *dead = NULL;
    mem_entry_t *e;
    int64_t ttl = -1;

    pthread_mutex_lock(&s->lock);
    e = find_live(s, now, h, key, klen, &dead);
    if (e != NULL && e->expires_us != 0) {
        /* Rounded up, so a key that still exists never reports 0 ms. */
        uint64_t ms = (e->expires_us - now + 999) / 1000;
        ttl = ms > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)ms;
    }
    pthread_mutex_unlock(&s->lock);
    free_chain(dead);
    if (e == NULL) {
        return UC_MISS;
    }
    *ttl_ms = ttl;
    return UC_OK;
}

static int mem_exists(uc__backend_t *b, const char *key, size_t klen)
{
    int64_t ttl;
    if (key == NULL) {
        return UC_EINVAL;
    }
    return probe(b, key, klen, &ttl);
}

static int mem_ttl(uc__backend_t *b, const char *key, size_t klen,
                   int64_t *ttl_ms)
{
    if (key == NULL || ttl_ms == NULL) {
        return UC_EINVAL;
    }
    return probe(b, key, klen, ttl_ms);
}

/*
 * Reads n keys one shard lock at a time. The answers are gathered in a
 * scratch array and copied to `out` only when every copy succeeded, so on
 * UC_ENOMEM `out` is untouched.
 */
static int mem_mget(uc__backend_t *b, size_t n, const char *const *keys,
                    const size_t *klens, uc_value_t *out)
{
    mem_backend_t *m = mem_of(b);
    uc_value_t *tmp;
    uint64_t now;
    int rc = UC_OK;
    size_t i;

    if (n == 0) {
        return UC_OK;
    }
    if (keys == NULL || klens == NULL || out == NULL) {
        return UC_EINVAL;
    }
    for (i = 0; i < n; i++) {
        if (keys[i] == NULL) {
            return UC_EINVAL;
        }
    }
    tmp = calloc(n, sizeof(*tmp));
    if (tmp == NULL) {
        return UC_ENOMEM;
    }
    now = uc__now_us(b->env);
    for (i = 0; i < n; i++) {
        tmp[i].status =
            get_one(m, now, keys[i], klens[i], 0, 0, &tmp[i].data, &tmp[i].len);
        if (tmp[i].status < 0) {
            rc = tmp[i].status;
            goto cleanup;
        }
    }
    memcpy(out, tmp, n * sizeof(*tmp));
    free(tmp);
    return UC_OK;

cleanup:
    for (size_t j = 0; j < i; j++) {
        free(tmp[j].data);
    }
    free(tmp);
    return rc;
}

/*
 * Stores n values. Every entry is built before any is stored, so UC_ETOOBIG
 * or UC_ENOMEM leave the store unchanged. Not atomic across keys (neither
 * are pipelined SETs); a later duplicate key wins.
 */
static int mem_mset(uc__backend_t *b, size_t n, const char *const *keys,
                    const size_t *klens, const char *const *vals,
                    const size_t *vlens, uint64_t ttl_ms)
{
    mem_backend_t *m = mem_of(b);
    mem_entry_t **es;
    uint64_t now, exp;
    int rc = UC_OK;
    size_t i;

    if (n == 0) {
        return UC_OK;
    }
    if (keys == NULL || klens == NULL || vals == NULL || vlens == NULL) {
        return UC_EINVAL;
    }
    for (i = 0; i < n; i++) {
        if (keys[i] == NULL || (vals[i] == NULL && vlens[i] > 0)) {
            return UC_EINVAL;
        }
    }
    es = calloc(n, sizeof(*es));
    if (es == NULL) {
        return UC_ENOMEM;
    }
    now = uc__now_us(b->env);
    exp = expiry_for(now, ttl_ms);
    for (i = 0; i < n; i++) {
        rc = entry_new(m, keys[i], klens[i], vals[i], vlens[i], exp, 0, &es[i]);
        if (rc != UC_OK) {
            goto cleanup;
        }
    }
    for (i = 0; i < n; i++) {
        mem_shard_t *s = &m->shards[shard_index(m, es[i]->hash)];
        mem_entry_t *dead = NULL;
        pthread_mutex_lock(&s->lock);
        store(m, s, now, es[i], &dead);
        pthread_mutex_unlock(&s->lock);
        free_chain(dead);
    }
    free(es);
    return UC_OK;

cleanup:
    for (size_t j = 0; j < i; j++) {
        free(es[j]);
    }
    free(es);
    return rc;
}

/*
 * Walks every shard, one lock at a time, and detaches (remove != 0) or counts
 * the live keys that match `glob` and that `filter` accepts; expired entries
 * met on the way are dropped. The filter is the core's own pure key check, so
 * unlike a user callback it may run under the shard lock. Keys holding a NUL
 * byte cannot be handed to fnmatch() and never match.
 */
static int scan(uc__backend_t *b, const char *glob, uc__key_filter_fn filter,
                void *farg, int remove, uint64_t *hits)
{
    mem_backend_t *m = mem_of(b);
    uint64_t now;
    uint64_t n = 0;

    if (glob == NULL) {
        return UC_EINVAL;
    }
    now = uc__now_us(b->env);
    for (unsigned i = 0; i < m->nshards; i++) {
        mem_shard_t *s = &m->shards[i];
        mem_entry_t *dead = NULL;
        pthread_mutex_lock(&s->lock);
        for (size_t j = 0; j < s->nbuckets; j++) {
            mem_entry_t **pp = &s->buckets[j];
            while (*pp != NULL) {
                mem_entry_t *e = *pp;
                int match;
                if (expired_at(e, now)) {
                    detach_at(s, pp, &dead);
                    s->expired++;
                    continue;
                }
                match = memchr(e->data, '\0', e->klen) == NULL &&
                        fnmatch(glob, e->data, 0) == 0 &&
                        (filter == NULL || filter(farg, e->data, e->klen));
                if (match) {
                    n++;
                }
                if (match && remove) {
                    detach_at(s, pp, &dead);
                } else {
                    pp = &e->hnext;
                }
            }
        }
        pthread_mutex_unlock(&s->lock);
        free_chain(dead);
    }
    *hits = n;
    return UC_OK;
}

static int mem_delete_pattern(uc__backend_t *b, const char *glob,
                              uc__key_filter_fn filter, void *farg,
                              size_t *removed)
{
    uint64_t n = 0;
    int rc = scan(b, glob, filter, farg, 1, &n);
    if (rc == UC_OK && removed != NULL) {
        *removed = (size_t)n;
    }
    return rc;
}

static int mem_count_pattern(uc__backend_t *b, const char *glob,
                             uc__key_filter_fn filter, void *farg,
                             uint64_t *count)
{
    uint64_t n = 0;
    int rc = scan(b, glob, filter, farg, 0, &n);
    if (rc == UC_OK && count != NULL) {
        *count = n;
    }
    return rc;
}

static int mem_get_max(uc__backend_t *b, const char *key, size_t klen,
                       size_t max, char **val, size_t *len)
{
    if (key == NULL || val == NULL || len == NULL) {
        return UC_EINVAL;
    }
    return get_one(mem_of(b), uc__now_us(b->env), key, klen, 1, max, val, len);
}

static int mem_mget_max(uc__backend_t *b, size_t n, const char *const *keys,
                        const size_t *klens, size_t max, uc_value_t *out)
{
    mem_backend_t *m = mem_of(b);
    uc_value_t *tmp;
    uint64_t now;

    if (n == 0) {
        return UC_OK;
    }
    if (keys == NULL || klens == NULL || out == NULL) {
        return UC_EINVAL;
    }
    tmp = calloc(n, sizeof(*tmp));
    if (tmp == NULL) {
        return UC_ENOMEM;
    }
    now = uc__now_us(b->env);
    for (size_t i = 0; i < n; i++) {
        tmp[i].status = get_one(m, now, keys[i], klens[i], 1, max, &tmp[i].data,
                                &tmp[i].len);
        if (tmp[i].status == UC_ENOMEM || tmp[i].status == UC_EINVAL) {
            int rc = tmp[i].status;

            for (size_t j = 0; j < i; j++) {
                free(tmp[j].data);
            }
            free(tmp);
            return rc;
        }
    }
    memcpy(out, tmp, n * sizeof(*tmp));
    free(tmp);
    return UC_OK;
}

/*
 * The conditional store behind add and cas: under the shard's lock, stores
 * (key, val) when the key is absent (expect == NULL) or holds exactly
 * expect. Returns UC_OK, UC_ESTALE (nothing stored), UC_ETOOBIG, UC_ENOMEM.
 */
static int store_if(uc__backend_t *b, const char *key, size_t klen,
                    const char *expect, size_t elen, const char *val,
                    size_t len, uint64_t ttl_ms)
{
    mem_backend_t *m = mem_of(b);
    mem_entry_t *dead = NULL;
    mem_entry_t *e = NULL;
    mem_entry_t *cur;
    mem_shard_t *s;
    uint64_t now;
    int rc;

    if (key == NULL || (val == NULL && len > 0)) {
        return UC_EINVAL;
    }
    now = uc__now_us(b->env);
    rc = entry_new(m, key, klen, val, len, expiry_for(now, ttl_ms), 0, &e);
    if (rc != UC_OK) {
        return rc;
    }
    s = &m->shards[shard_index(m, e->hash)];
    pthread_mutex_lock(&s->lock);
    cur = find_live(s, now, e->hash, key, klen, &dead);
    if (expect == NULL ? cur != NULL
                       : (cur == NULL || cur->vlen != elen ||
                          memcmp(entry_value(cur), expect, elen) != 0)) {
        rc = UC_ESTALE;
    } else {
        store(m, s, now, e, &dead);
        e = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    free_chain(dead);
    free(e);
    return rc;
}

static int mem_add(uc__backend_t *b, const char *key, size_t klen,
                   const char *val, size_t len, uint64_t ttl_ms)
{
    return store_if(b, key, klen, NULL, 0, val, len, ttl_ms);
}

static int mem_cas(uc__backend_t *b, const char *key, size_t klen,
                   const char *expect, size_t elen, const char *val, size_t len,
                   uint64_t ttl_ms)
{
    if (expect == NULL) {
        return UC_EINVAL;
    }
    return store_if(b, key, klen, expect, elen, val, len, ttl_ms);
}

static int mem_ping(uc__backend_t *b)
{
    (void)b;
    return UC_OK;
}

static int mem_info(uc__backend_t *b, uc_server_info_t *out)
{
    mem_backend_t *m = mem_of(b);
    uc_server_info_t info;

    if (out == NULL) {
        return UC_EINVAL;
    }
    memset(&info, 0, sizeof(info));
    info.max_memory = m->max_bytes;
    for (unsigned i = 0; i < m->nshards; i++) {
        mem_shard_t *s = &m->shards[i];
        pthread_mutex_lock(&s->lock);
        info.used_memory += s->used;
        info.keys += s->count;
        info.evicted_keys += s->evicted;
        info.expired_keys += s->expired;
        info.server_hits += s->hits;
        info.server_misses += s->misses;
        pthread_mutex_unlock(&s->lock);
    }
    memcpy(info.version, "memory", sizeof("memory"));
    *out = info;
    return UC_OK;
}

static void mem_pool_stats(uc__backend_t *b, uc_pool_stats_t *out)
{
    (void)b;
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
}

/* Frees the first `n` shards and the handle; destroy and create's unwind. */
static void release(mem_backend_t *m, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        mem_shard_t *s = &m->shards[i];
        for (size_t j = 0; j < s->nbuckets; j++) {
            free_chain(s->buckets[j]);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(m);
}

static void mem_destroy(uc__backend_t *b)
{
    if (b != NULL) {
        release(mem_of(b), mem_of(b)->nshards);
    }
}

static const uc__backend_ops_t mem_ops = {
    .name = "memory",
    .get = mem_get,
    .set = mem_set,
    .del = mem_del,
    .exists = mem_exists,
    .ttl = mem_ttl,
    .mget = mem_mget,
    .mset = mem_mset,
    .delete_pattern = mem_delete_pattern,
    .count_pattern = mem_count_pattern,
    .get_max = mem_get_max,
    .mget_max = mem_mget_max,
    .put = mem_set,
    .add = mem_add,
    .cas = mem_cas,
    .ping = mem_ping,
    .info = mem_info,
    .pool_stats = mem_pool_stats,
    .destroy = mem_destroy,
};

/* Fills the hash key from the kernel's generator, or, if that is not
 * available, from the clock and an address (weaker, never fatal). */
static void seed(mem_backend_t *m)
{
    uint64_t k[2];
    if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] =
            (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec;
        k[1] = (uint64_t)(uintptr_t)m * 0xc2b2ae3d27d4eb4fULL ^ k[0];
    }
    m->k0 = k[0];
    m->k1 = k[1];
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", msg);
    }
}

/*
 * Creates a memory backend with env->cfg.memory_max_bytes (0: 64 MiB) as its
 * budget, split evenly over 16 shards (fewer when a shard would get under
 * 1 MiB; budgets under 2 MiB use one). One entry (key, value and overhead)
 * may use at most one shard's share: 4 MiB of the default 64 MiB; larger
 * ones get UC_ETOOBIG. `env` is borrowed and must outlive the backend.
 * Returns UC_OK and sets *out, or UC_EINVAL/UC_ENOMEM with a message in err
 * (may be NULL).
 */
int uc__memory_create(const uc__env_t *env, uc__backend_t **out, char *err,
                      size_t errlen)
{
    mem_backend_t *m;
    size_t max;
    unsigned i;

    if (env == NULL || out == NULL) {
        set_err(err, errlen, "memory backend: missing environment");
        return UC_EINVAL;
    }
    max = env->cfg.memory_max_bytes != 0 ? env->cfg.memory_max_bytes
                                         : MEM_DEFAULT_MAX_BYTES;
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        goto nomem;
    }
    m->base.ops = &mem_ops;
    m->base.env = env;
    m->max_bytes = max;
    m->nshards = MEM_SHARDS_MAX;
    while (m->nshards > 1 && max / m->nshards < MEM_SHARD_MIN_BYTES) {
        m->nshards /= 2;
    }
    m->shard_budget = max / m->nshards;
    seed(m);
    for (i = 0; i < m->nshards; i++) {
        mem_shard_t *s = &m->shards[i];
        s->buckets = calloc(MEM_INITIAL_BUCKETS, sizeof(*s->buckets));
        if (s->buckets == NULL || pthread_mutex_init(&s->lock, NULL) != 0) {
            free(s->buckets);
            release(m, i);
            goto nomem;
        }
        s->nbuckets = MEM_INITIAL_BUCKETS;
    }
    *out = &m->base;
    return UC_OK;

nomem:
    set_err(err, errlen, "memory backend: out of memory");
    return UC_ENOMEM;
}
