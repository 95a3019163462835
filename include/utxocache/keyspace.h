/* SPDX-License-Identifier: MIT */
/*
 * Keyspaces: families of keys declared as data. Each has a name, a key
 * pattern with named fields ("feedback:stats:{insight_id}") and a TTL. The
 * library builds every key of a keyspace itself, from field values, so that
 * no value can widen a pattern or reach another keyspace:
 *
 *   - a field value is 1 to UC_FIELD_MAX bytes; control bytes (0x00-0x1f,
 *     0x7f) are rejected with UC_EINVAL;
 *   - bytes other than [A-Za-z0-9._-] are escaped as %XX (upper-case hex),
 *     so glob metacharacters (* ? [ ] \), the separator ':' and '%' itself
 *     never appear raw in a field. Escaping is injective: two different
 *     values always give two different keys.
 *
 * Ownership: a uc_keyspace_t belongs to its cache and lives as long as it;
 * values returned through `char **val` are the caller's (uc_free()).
 * Thread safety: keyspace handles are thread-safe, like the cache.
 */
#ifndef UTXOCACHE_KEYSPACE_H
#define UTXOCACHE_KEYSPACE_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UC_FIELD_MAX 256
#define UC_KEYSPACE_FIELDS_MAX 8
/* Tags a keyspace may declare, and the longest tag text. */
#define UC_KEYSPACE_TAGS_MAX 4
#define UC_TAG_MAX (UC_KEY_MAX - 1)

/*
 * Loader for get-or-load: produces the value of the entry whose fields (in
 * pattern order) are fields[0..nfields-1], typically from the database. On
 * success returns UC_OK and hands over a malloc()ed buffer in *val and *len,
 * which the library takes and frees with free(). On failure returns any
 * negative code of the caller's choosing; get-or-load returns that code
 * unchanged. Called without any library lock held, from the calling thread.
 */
typedef int (*uc_loader_fn)(void *arg, const char *const *fields,
                            size_t nfields, char **val, size_t *len);

/* Validator: returns nonzero when a cached value is usable. */
typedef int (*uc_validator_fn)(void *arg, const char *val, size_t len);

/* Default cap on one value of a keyspace (envelope excluded). */
#define UC_KEYSPACE_VALUE_MAX_DEFAULT (1024u * 1024u)

/*
 * A keyspace declaration. Strings must outlive the cache (static data). A
 * zero field means its default.
 */
typedef struct {
    const char *name;    /* [a-z0-9_], at most UC_KEYSPACE_NAME_MAX - 1 */
    const char *pattern; /* literal text [A-Za-z0-9._:-] and {field} names */
    uint32_t ttl_s;      /* default TTL; UTXOCACHE_TTL_<NAME> overrides */
    /* Values larger than this are neither stored nor read back (a read of
     * one counts as corrupt and deletes it). 0: 1 MiB. */
    size_t max_value_bytes;
    /* The keyspace's own loader and validator, used by get-or-load when its
     * options name none (may be NULL). */
    uc_loader_fn loader;
    void *loader_arg;
    uc_validator_fn validator;
    void *validator_arg;
    /* Serve-stale grace: an entry is kept this long past its TTL, and
     * get-or-load answers with it (UC_FROM_STALE) when the loader fails or
     * is slow. 0: one day; UC_KEYSPACE_NONE: no grace.
     * UTXOCACHE_STALE_S_<NAME> overrides. */
    uint32_t stale_s;
    /* How long a loader's UC_MISS ("no such entity") is remembered, so a
     * repeated read of something absent does not reach the database again.
     * 0: not remembered. */
    uint32_t negative_ttl_s;
    /* TTL jitter, percent: each fill's TTL is drawn uniformly within
     * +-jitter_pct % of the TTL, so entries filled together do not expire
     * together. 0: 10; UC_KEYSPACE_NONE: none. */
    uint32_t jitter_pct;
    /* Early refresh (XFetch): a read refreshes the entry before it expires
     * with probability exp(-remaining / (load time * beta)). 0: 1.0;
     * negative: never early. */
    double refresh_beta;
    /*
     * Tags: NULL, or a NULL-terminated list of at most
     * UC_KEYSPACE_TAGS_MAX patterns over this keyspace's own field names,
     * in the key pattern's syntax ("insight:{insight_id}", or literal text
     * alone: "backfill:jobs"). Each entry carries the tags its fields
     * build; uc_cache_invalidate_tag() of one makes every entry of every
     * keyspace carrying it a miss, at the cost of one write whatever the
     * number of entries. A tagged read also checks its tags' versions (see
     * "Tags" below). An unknown field name is UC_EINVAL.
     */
    const char *const *tags;
    /* Warm on write (uc_config_t.refill_top): refill this keyspace's
     * entries that are among its refill_top most read. 0: the cache's
     * setting; negative: never refilled. */
    int refill_top;
} uc_keyspace_def_t;

/* "None" for the uint32_t fields of uc_keyspace_def_t that say so. */
#define UC_KEYSPACE_NONE UINT32_MAX

typedef struct uc_keyspace uc_keyspace_t;

/*
 * Declares keyspaces on a cache. Call before the cache is shared between
 * threads. Fails with UC_EINVAL (message in err) on a malformed pattern or a
 * duplicate name; then nothing is registered.
 */
UC_EXPORT int uc_cache_add_keyspaces(uc_cache_t *cache,
                                     const uc_keyspace_def_t *defs, size_t n,
                                     char *err, size_t errlen);

/* The keyspace of that name, or NULL. */
UC_EXPORT uc_keyspace_t *uc_cache_keyspace(uc_cache_t *cache, const char *name);

UC_EXPORT const char *uc_keyspace_name(const uc_keyspace_t *ks);
UC_EXPORT uint32_t
uc_keyspace_ttl(const uc_keyspace_t *ks); /* after overrides */
UC_EXPORT size_t uc_keyspace_nfields(const uc_keyspace_t *ks);
/* Name of field i, or NULL past the end. */
UC_EXPORT const char *uc_keyspace_field(const uc_keyspace_t *ks, size_t i);

/*
 * Builds the logical key (without the cache's prefix) of the entry whose
 * fields, in pattern order, are fields[0..nfields-1]. Writes a NUL-terminated
 * key to buf and its length to *len. UC_EINVAL when nfields is wrong or a
 * field is invalid; UC_ETOOBIG when buf is too small.
 */
UC_EXPORT int uc_keyspace_key(const uc_keyspace_t *ks,
                              const char *const *fields, size_t nfields,
                              char *buf, size_t cap, size_t *len);

/* Escapes one field value as described above (exposed for tests/tools). */
UC_EXPORT int uc_key_escape_field(const char *val, size_t vlen, char *buf,
                                  size_t cap, size_t *len);

/*
 * get / set (with the keyspace TTL) of one entry. Values are stored in the
 * library's envelope (see entry.c), so uc_keyspace_get() returns UC_MISS for
 * a key that holds anything else, or a value over the keyspace's cap.
 * uc_keyspace_set() refuses a value over the cap with UC_ETOOBIG. A set is
 * unconditional: use get-or-load for fills that must not race writes.
 */
UC_EXPORT int uc_keyspace_get(uc_keyspace_t *ks, const char *const *fields,
                              size_t nfields, char **val, size_t *len);
UC_EXPORT int uc_keyspace_set(uc_keyspace_t *ks, const char *const *fields,
                              size_t nfields, const char *val, size_t len);

/* uc_keyspace_invalidate() of one entry; *existed (may be NULL) tells
 * whether the key was there (a value or a lease). */
UC_EXPORT int uc_keyspace_del(uc_keyspace_t *ks, const char *const *fields,
                              size_t nfields, int *existed);

/*
 * Invalidates entries of the keyspace. A NULL field means "any value": all
 * NULL removes every key of the keyspace; fields[i] set selects the entries
 * whose field i has that value. Only keys with exactly this keyspace's shape
 * are removed, even when another keyspace's keys would match the glob. All
 * fields set is one UNLINK; otherwise SCAN+UNLINK in batches. Deleting a key
 * also deletes any lease in it, which is what keeps a fill that read the
 * database before the write from storing.
 *
 * A delete that fails is retried at once (twice, counted in
 * invalidation_retries); if it still fails the invalidation stays pending
 * in the library: every get-or-load of a matching entry reads the loader
 * instead of the cache until the library's worker has applied it. Returns
 * UC_OK when applied now, or the cache's error (the invalidation is then
 * pending, not lost). Writers with a durable log use
 * uc_cache_apply_invalidations() (invlog.h) instead.
 */
UC_EXPORT int uc_keyspace_invalidate(uc_keyspace_t *ks,
                                     const char *const *fields, size_t nfields,
                                     size_t *removed);

/*
 * The invalidation target of an entry, or of a set of entries (NULL fields
 * as in uc_keyspace_invalidate()): the text a writer records in its durable
 * invalidation log (invlog.h) together with the keyspace's name. Writes it
 * NUL-terminated into buf. UC_EINVAL for bad fields, UC_ETOOBIG when buf is
 * too small (UC_KEY_MAX + 1 is always enough).
 */
UC_EXPORT int uc_keyspace_target(const uc_keyspace_t *ks,
                                 const char *const *fields, size_t nfields,
                                 char *buf, size_t cap, size_t *len);

/*
 * Tags. A tag is a text such as "insight:42": literal bytes
 * [A-Za-z0-9._:-] and escaped field values, 1 to UC_TAG_MAX bytes. Its
 * version is a random 64-bit value kept in the store at
 * <prefix>uc:tag:<tag>. A fill reads the versions of its entry's tags
 * before it calls the loader (creating a missing one) and records them in
 * the entry's envelope; a read uses the entry only while every recorded
 * version is the current one. Invalidating a tag writes a new version: one
 * round trip, whatever the number of entries. A version that is missing
 * (evicted, expired, deleted, a flushed dataset) reads as changed, never as
 * unchanged. The near cache keeps the versions too, invalidated through the
 * same channel as entries.
 */

/* The number of tags ks declares, and the pattern of tag i (NULL past the
 * end). */
UC_EXPORT size_t uc_keyspace_ntags(const uc_keyspace_t *ks);
UC_EXPORT const char *uc_keyspace_tag_pattern(const uc_keyspace_t *ks,
                                              size_t i);

/*
 * Builds the text of tag i of the entry whose fields, in pattern order, are
 * fields[0..nfields-1] (a field the tag does not use may be NULL), escaped
 * as keys are. Writes it NUL-terminated to buf and its length to *len.
 * UC_EINVAL for a bad index, count or field; UC_ETOOBIG when buf is too
 * small (UC_TAG_MAX + 1 is always enough).
 */
UC_EXPORT int uc_keyspace_tag(const uc_keyspace_t *ks, size_t i,
                              const char *const *fields, size_t nfields,
                              char *buf, size_t cap, size_t *len);

/*
 * The durable log's target for tag i of those fields: "#" and the tag's
 * text (no key target starts with '#': a key pattern starts with literal
 * text, and '#' in a field is escaped). A record of it (uc_inval_record_t,
 * invlog.h) may name any keyspace, or none (""); the tag is the same for
 * every keyspace that declares it. Give a keyspace's name on the memory
 * backend: its processes learn of each other's records through the log's
 * tail, which reads records of declared keyspaces. UC_EINVAL, UC_ETOOBIG
 * as uc_keyspace_tag(); UC_KEY_MAX + 1 bytes are always enough.
 */
UC_EXPORT int uc_keyspace_tag_target(const uc_keyspace_t *ks, size_t i,
                                     const char *const *fields, size_t nfields,
                                     char *buf, size_t cap, size_t *len);

/*
 * Invalidates a tag (its text, as uc_keyspace_tag() builds it): writes a
 * new random version, and drops this process's near copy of it at once.
 * Every entry carrying the tag, in any keyspace, reads as a miss from then
 * on, here and, through Redis' invalidation messages, in every other
 * instance. Retried at once (twice); if it still fails the tag stays
 * pending: every get-or-load of an entry carrying it reads the loader until
 * the worker has applied it. Returns UC_OK, UC_EINVAL for a malformed tag,
 * or the cache's error (the invalidation is then pending, not lost).
 */
UC_EXPORT int uc_cache_invalidate_tag(uc_cache_t *cache, const char *tag);

/* Counts the keys of the keyspace in the backend (SCAN; for operators). */
UC_EXPORT int uc_keyspace_count(uc_keyspace_t *ks, uint64_t *count);

/* How get-or-load answered (for X-Cache headers and logs). */
typedef enum {
    UC_FROM_CACHE = 1,    /* hit */
    UC_FROM_LOADER = 2,   /* miss, loaded, stored */
    UC_FROM_FALLBACK = 3, /* cache failed or unavailable, loaded */
    UC_FROM_BYPASS = 4,   /* an invalidation of the entry is pending (or the
                             Redis dataset is being dropped): loaded, not
                             stored, the cache not read */
    UC_FROM_STALE = 5,    /* the loader failed or outlasted the soft timeout:
                             a value past its TTL but within the keyspace's
                             grace, never older than an acknowledged
                             invalidation */
} uc_source_t;

/* Which tier answered a hit or a stale value. */
typedef enum {
    UC_TIER_NONE = 0,  /* the loader (or nothing) */
    UC_TIER_NEAR = 1,  /* this process's near cache, no round trip */
    UC_TIER_REDIS = 2, /* the shared store (Redis, or the memory backend) */
} uc_tier_t;

/* uc_load_opts_t.flags */
enum {
    /* The result's data is a shared, immutable buffer (a near-cache hit
     * hands out the entry itself, no copy): release it with
     * uc_shared_release(), never uc_free(). */
    UC_LOAD_SHARED = (1 << 0),
};

/* Options of one get-or-load call; zero fields take the keyspace's own. */
typedef struct {
    uc_loader_fn loader;       /* NULL: the keyspace's loader */
    void *loader_arg;          /* with loader; ignored when loader is NULL */
    uc_validator_fn validator; /* NULL: the keyspace's validator, if any */
    void *validator_arg;
    uint32_t flags;     /* UC_LOAD_* */
    uint32_t reserved_; /* 0 */
} uc_load_opts_t;

#define UC_LOAD_OPTS_INIT                                                      \
    {                                                                          \
        0                                                                      \
    }

/* What get-or-load hands back; data is the caller's: uc_free(), or
 * uc_shared_release() when the call asked for UC_LOAD_SHARED. */
typedef struct {
    char *data; /* NUL-terminated, the NUL not counted in len */
    size_t len;
    uc_source_t source;
    uint64_t produced_ms; /* wall clock (ms since the epoch) of the load
                             that made this value; 0 when unknown */
    uint64_t hash;        /* FNV-1a 64 of data, computed once when the value was
                             made (an ETag needs no pass over a cached body) */
    uc_tier_t tier;       /* who answered a hit or a stale value */
} uc_load_result_t;

/* Releases the data of a UC_LOAD_SHARED result (any thread; NULL is
 * accepted). Its shape fits libmicrohttpd's free callbacks. */
UC_EXPORT void uc_shared_release(void *data);

/*
 * Cache-aside read, as explicit steps (see load.c):
 *   1. an invalidation of this entry (or of one of its tags) pending
 *      anywhere (the durable log, a failed delete): load, do not read or
 *      store the cache (BYPASS);
 *   2. read the entry; a value whose envelope is missing, corrupt, names
 *      another key, or exceeds the keyspace's cap is deleted and counted as
 *      corrupt, as is one the validator rejects; a value whose recorded tag
 *      versions are not all current is a miss (replaced by the fill); a hit
 *      is returned;
 *   3. on a miss, take a lease in the entry's own key (a random token, set
 *      only if the key is absent, or over the value being replaced), read
 *      the tag versions, call the loader, then store its value with those
 *      versions only while the lease is still there. An invalidation
 *      deletes the key and the lease with it, so a load that read the
 *      database before a write can never store its old value; a tag
 *      invalidation changes a version the value recorded, so it reads as a
 *      miss. A lease held by another caller means a fill in progress: the
 *      value is loaded but not stored.
 *   4. when the cache fails (or its breaker is open) the loader's value is
 *      returned without storing (FALLBACK).
 * A cache failure never fails the call; a loader failure is returned as the
 * loader's own code; UC_EINVAL for bad fields or no loader at all.
 */
UC_EXPORT int uc_keyspace_get_or_load(uc_keyspace_t *ks,
                                      const char *const *fields, size_t nfields,
                                      const uc_load_opts_t *opts,
                                      uc_load_result_t *out);

/* Statistics of this keyspace (a copy). */
UC_EXPORT void uc_keyspace_stats(const uc_keyspace_t *ks, uc_stats_t *out);

/* The keyspace's share of the near cache (all zero without one). */
UC_EXPORT void uc_keyspace_near_usage(const uc_keyspace_t *ks,
                                      uc_near_usage_t *out);

/* ---- the most read entries ----------------------------------------------- */

/*
 * Each keyspace keeps a record of its most read entries (the Space-Saving
 * heavy-hitters summary: a fixed number of counters, UTXOCACHE_HOT_CAPACITY,
 * whatever the number of distinct keys). It counts get-or-load calls: every
 * one while the keyspace is read fewer than UTXOCACHE_HOT_SAMPLE_ABOVE
 * times a second, one in UTXOCACHE_HOT_SAMPLE at random above that; and it
 * halves its counts every 10 minutes so that it follows what is read now.
 * Logical keys (without the cache's prefix) of UC_HOT_KEY_MAX bytes or more are
 * not recorded.
 */
#define UC_HOT_KEY_MAX 256

typedef struct {
    char key[UC_HOT_KEY_MAX]; /* the logical key, NUL-terminated */
    /* Estimated reads (the sampled count times the sampling rate). Unsampled
     * and before any halving, an upper bound of the true count, and
     * reads - error a lower bound. */
    uint64_t reads;
    uint64_t error; /* how much of reads may belong to keys it replaced */
} uc_hot_entry_t;

/*
 * Copies up to cap of the keyspace's most read entries into out, most read
 * first (out may be NULL when cap is 0). Returns how many entries the record
 * knows, which may be more than cap; 0 without a record.
 */
UC_EXPORT size_t uc_keyspace_hot(const uc_keyspace_t *ks, uc_hot_entry_t *out,
                                 size_t cap);

/* The memory the keyspace's record holds, bytes (its allocations' usable
 * sizes: counters, index and keys). */
UC_EXPORT size_t uc_keyspace_hot_bytes(const uc_keyspace_t *ks);

#ifdef __cplusplus
}
#endif
#endif /* UTXOCACHE_KEYSPACE_H */
