/* SPDX-License-Identifier: MIT */
/*
 * The near cache: an in-process tier of immutable, reference-counted entries
 * that the core keeps in front of the shared store. It is split into classes
 * (one per keyspace), each with its own byte budget and UC__NEAR_SHARDS
 * shards chosen by key hash; a hit locks one shard, takes a reference and
 * copies nothing. It never talks to a store and never calls back into the
 * core. Freshness is the caller's judgement (an entry's meta carries the
 * times); the near cache only drops entries past their hard end (stale_ms).
 *
 * Ownership: arguments are borrowed; an entry that comes back from
 * uc__near_get() or through `**out` carries one reference, which its holder
 * gives back with uc__near_release(), from any thread, also after
 * uc__near_destroy().
 *
 * Thread safety: every function may be called from any number of threads at
 * once, except uc__near_destroy(), which runs alone after every other call on
 * the handle has returned. An entry is immutable once published, so readers
 * share it without locks.
 *
 * Accounting: an entry is charged malloc_usable_size() of its one allocation
 * (UC__NEAR_HEADER + key + value + 1 bytes requested) from the moment it is
 * installed until it is freed, also while it is out of the cache but still
 * referenced; each shard also charges its index at its allocated size: 14
 * bytes per slot (entry pointer, hash tag, half a ghost slot), the index
 * kept between 3/8 and 3/4 full, so 19 to 37 bytes per entry. The charge per
 * entry beyond key and value is thus UC__NEAR_HEADER + 1, plus the
 * allocator's rounding (0 to 15 bytes with glibc), plus that index share:
 * about 118 to 148 bytes. A class never admits an entry that would take its
 * charge over its budget, so the heap a class holds stays within the budget
 * plus UC__NEAR_UNCHARGED bytes per entry (and allocator fragmentation). An
 * entry refused by uc__near_put() but handed back to the caller is the
 * caller's private copy and is charged nowhere, like the buffer it was
 * copied from.
 */
#ifndef UC_LIB_NEAR_H
#define UC_LIB_NEAR_H

#include <stddef.h>
#include <stdint.h>

/* Shards per class, each with its own lock and 1/UC__NEAR_SHARDS of the
 * class's budget. */
#define UC__NEAR_SHARDS 16
/* An entry may take at most this fraction (1/n) of its shard's budget. */
#define UC__NEAR_ENTRY_SHARE 4
/* Invalidation generation slots, shared by every class. */
#define UC__NEAR_GEN_SLOTS 8192
/* Bytes of an entry in front of its key and value. */
#define UC__NEAR_HEADER 96
/*
 * Heap bytes an entry costs beyond its charge: the allocator's own chunk
 * header, which malloc_usable_size() leaves out (8 bytes with 64-bit glibc),
 * rounded up.
 */
#define UC__NEAR_UNCHARGED 16
/* Longest key an entry can hold. */
#define UC__NEAR_KEY_MAX 65535

typedef struct {
    uint64_t produced_ms; /* wall clock of the load that made the value */
    uint64_t expires_ms;  /* logical expiry (wall ms): fresh before it */
    uint64_t stale_ms;    /* hard end (wall ms), 0 none: dropped from then */
    uint32_t load_us;     /* how long the load took (early refresh's delta) */
    uint32_t flags;       /* the envelope's UC__META_* */
    uint64_t hash;        /* FNV-1a 64 of the value (the ETag), the caller's */
    uint64_t tags;        /* the caller's: a digest of the tag versions the
                             value was built from, 0 for none */
} uc__near_meta_t;

/* One cached value with its key and meta; immutable once published. */
typedef struct uc__near_entry uc__near_entry_t;

/* The value: len bytes, NUL-terminated (the NUL not counted). */
const char *uc__near_value(const uc__near_entry_t *e);
size_t uc__near_len(const uc__near_entry_t *e);

/* The key the entry was stored under (not NUL-terminated), *klen its length. */
const char *uc__near_key(const uc__near_entry_t *e, size_t *klen);

/* The meta given to uc__near_put(), copied into the entry. */
const uc__near_meta_t *uc__near_meta(const uc__near_entry_t *e);

/* Bytes the entry is charged while it is installed or referenced after. */
size_t uc__near_charge(const uc__near_entry_t *e);

/* Takes one more reference on an entry the caller holds a reference to. */
/* A private entry (one reference, in no cache) holding a copy of (key,
 * val): what a caller hands out when the value was not kept. NULL on
 * allocation failure or lengths over the limits. */
uc__near_entry_t *uc__near_entry_new(const char *key, size_t klen,
                                     const char *val, size_t vlen,
                                     const uc__near_meta_t *meta);

/* The entry whose value uc__near_value() returned `value`. */
uc__near_entry_t *uc__near_entry_of(const char *value);

void uc__near_retain(uc__near_entry_t *e);

/*
 * Gives back one reference; the last one frees the entry (and, when it was
 * installed, stops charging its class). Any thread; accepts NULL.
 */
void uc__near_release(uc__near_entry_t *e);

typedef struct uc__near uc__near_t;

/*
 * Creates a near cache of nclasses independent classes (1 to 4096), each
 * with a budget of 0 (disabled) until uc__near_set_budget(). Returns UC_OK
 * and sets *out, UC_EINVAL or UC_ENOMEM.
 */
int uc__near_create(size_t nclasses, uc__near_t **out);

/*
 * Drops every entry and frees the handle once no entry is referenced any
 * more: entries still held stay readable until their last release. Accepts
 * NULL.
 */
void uc__near_destroy(uc__near_t *n);

/*
 * Sets a class's budget in bytes, split evenly over its shards; 0 disables
 * the class (everything in it is dropped and every put refused). A smaller
 * budget evicts at once until the class fits. Returns UC_OK, or UC_EINVAL
 * for a class out of range.
 */
int uc__near_set_budget(uc__near_t *n, size_t cls, size_t bytes);

/*
 * Looks key up in class cls. Returns the entry with a reference for the
 * caller, or NULL (not there, class out of range). now_ms is the wall clock
 * meta's times are on: an entry whose stale_ms is at or before it is dropped
 * and not returned (0: no such check). A hit bumps the entry's use count and
 * moves nothing.
 */
uc__near_entry_t *uc__near_get(uc__near_t *n, size_t cls, const char *key,
                               size_t klen, uint64_t now_ms);

/*
 * The pending marker that closes the read-vs-invalidation race. Take a
 * ticket BEFORE reading the value from the store and pass it to
 * uc__near_put(): the put installs nothing if, since the ticket, the key was
 * invalidated, its class flushed or the whole cache flushed. Keys share
 * UC__NEAR_GEN_SLOTS generation slots, so an invalidation of another key in
 * the same slot refuses the put too (conservative, never the reverse). The
 * ticket is a position in one order of all invalidations and flushes, so it
 * does not depend on the key.
 */
uint64_t uc__near_ticket(uc__near_t *n);

/*
 * Copies key and value once into a new entry and installs it in class cls,
 * replacing the key's older entry (which lives on for its readers). ticket
 * comes from uc__near_ticket() before the value was read; now_ms as for
 * uc__near_get().
 *
 * Returns 1 when installed; 0 when refused: ticket outdated, class disabled,
 * entry over UC__NEAR_ENTRY_SHARE of its shard, already past stale_ms, or
 * no room because readers hold evicted entries worth the whole budget.
 * Either way, when out is not NULL, *out receives the entry with a reference
 * for the caller, who may serve from it (a refused one is just a private
 * copy of what the caller read, charged nowhere). Negative codes write
 * nothing to *out: UC_EINVAL (bad arguments, class out of range),
 * UC_ETOOBIG (key over UC__NEAR_KEY_MAX, value over 4 GiB) or UC_ENOMEM.
 */
int uc__near_put(uc__near_t *n, size_t cls, const char *key, size_t klen,
                 uint64_t ticket, const char *val, size_t vlen,
                 const uc__near_meta_t *meta, uint64_t now_ms,
                 uc__near_entry_t **out);

/*
 * Bumps the key's generation, then removes its entry from every class: a
 * put whose ticket predates the call installs nothing for the key.
 */
void uc__near_invalidate(uc__near_t *n, const char *key, size_t klen);

/* Drops every entry of every class; puts with earlier tickets are refused. */
void uc__near_flush(uc__near_t *n);

/* Drops every entry of class cls; its puts with earlier tickets are
 * refused. A class out of range is ignored. */
void uc__near_flush_class(uc__near_t *n, size_t cls);

typedef struct {
    uint64_t budget;        /* bytes, as last set */
    uint64_t bytes;         /* charged now: entries (dead ones too) + index */
    uint64_t index_bytes;   /* of bytes: hash slots and ghost */
    uint64_t dead_bytes;    /* of bytes: entries out, still referenced */
    uint64_t entries;       /* installed now */
    uint64_t hits;          /* gets that returned an entry */
    uint64_t misses;        /* gets that did not */
    uint64_t inserts;       /* puts that installed */
    uint64_t evictions;     /* entries dropped to make room */
    uint64_t expired;       /* entries dropped past their stale_ms */
    uint64_t refused;       /* puts that installed nothing (not errors) */
    uint64_t invalidations; /* entries removed by uc__near_invalidate() */
    uint64_t flushes;       /* flushes of this class (its own or all) */
} uc__near_stats_t;

/* Copies class cls's figures into *out (zeros for a class out of range). */
void uc__near_stats(uc__near_t *n, size_t cls, uc__near_stats_t *out);

#endif
