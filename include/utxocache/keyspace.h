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

#ifdef __cplusplus
extern "C" {
#endif

#define UC_FIELD_MAX 256
#define UC_KEYSPACE_FIELDS_MAX 8

/* A keyspace declaration. Strings must outlive the cache (static data). */
typedef struct {
    const char *name;    /* [a-z0-9_], at most UC_KEYSPACE_NAME_MAX - 1 */
    const char *pattern; /* literal text [A-Za-z0-9._:-] and {field} names */
    uint32_t ttl_s;      /* default TTL; UTXOCACHE_TTL_<NAME> overrides */
} uc_keyspace_def_t;

/*
 * The utxoIQ web-api's keyspaces, with the existing service's TTLs:
 *   feedback_stats     feedback:stats:{insight_id}                   3600 s
 *   backfill_job       backfill:job:{job_id}                          300 s
 *   recent_metrics     metrics:{service}:{metric_type}:recent         300 s
 *   aggregated_metrics metrics:{service}:{metric_type}:agg:{interval}:
 *                      {start}:{end}                                 3600 s
 * Returns the static table and sets *n to its length.
 */
const uc_keyspace_def_t *uc_keyspaces_utxoiq(size_t *n);

typedef struct uc_keyspace uc_keyspace_t;

/*
 * Declares keyspaces on a cache. Call before the cache is shared between
 * threads. Fails with UC_EINVAL (message in err) on a malformed pattern or a
 * duplicate name; then nothing is registered.
 */
int uc_cache_add_keyspaces(uc_cache_t *cache, const uc_keyspace_def_t *defs,
                           size_t n, char *err, size_t errlen);

/* The keyspace of that name, or NULL. */
uc_keyspace_t *uc_cache_keyspace(uc_cache_t *cache, const char *name);

const char *uc_keyspace_name(const uc_keyspace_t *ks);
uint32_t uc_keyspace_ttl(const uc_keyspace_t *ks); /* after overrides */
size_t uc_keyspace_nfields(const uc_keyspace_t *ks);
/* Name of field i, or NULL past the end. */
const char *uc_keyspace_field(const uc_keyspace_t *ks, size_t i);

/*
 * Builds the logical key (without the cache's prefix) of the entry whose
 * fields, in pattern order, are fields[0..nfields-1]. Writes a NUL-terminated
 * key to buf and its length to *len. UC_EINVAL when nfields is wrong or a
 * field is invalid; UC_ETOOBIG when buf is too small.
 */
int uc_keyspace_key(const uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, char *buf, size_t cap, size_t *len);

/* Escapes one field value as described above (exposed for tests/tools). */
int uc_key_escape_field(const char *val, size_t vlen, char *buf, size_t cap,
                        size_t *len);

/* get / set (with the keyspace TTL) / del of one entry. */
int uc_keyspace_get(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, char **val, size_t *len);
int uc_keyspace_set(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, const char *val, size_t len);
int uc_keyspace_del(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, int *existed);

/*
 * Invalidates entries of the keyspace. A NULL field means "any value": all
 * NULL removes every key of the keyspace; fields[i] set selects the entries
 * whose field i has that value. Only keys with exactly this keyspace's shape
 * are removed, even when another keyspace's keys would match the glob. All
 * fields set is one delete. A failed delete is retried (twice, counted in
 * invalidation_retries) before UC_E* is returned and counted in
 * invalidation_failures. Invalidation also bumps the keyspace's generation
 * so that a get-or-load which started before it never stores what it read.
 */
int uc_keyspace_invalidate(uc_keyspace_t *ks, const char *const *fields,
                           size_t nfields, size_t *removed);

/* Counts the keys of the keyspace in the backend (SCAN; for operators). */
int uc_keyspace_count(uc_keyspace_t *ks, uint64_t *count);

/*
 * Loader for get-or-load: produces the value for the entry (typically from
 * the database). On success returns UC_OK and hands over a malloc()ed
 * buffer in *val and *len, which the library takes and frees with free(). On
 * failure returns any negative code of the caller's choosing; get-or-load
 * returns that code unchanged.
 */
typedef int (*uc_loader_fn)(void *arg, char **val, size_t *len);

/* Validator: returns nonzero when a cached value is usable. */
typedef int (*uc_validator_fn)(void *arg, const char *val, size_t len);

/* How get-or-load answered (for X-Cache headers and logs). */
typedef enum {
    UC_FROM_CACHE = 1,    /* hit */
    UC_FROM_LOADER = 2,   /* miss, loaded, stored */
    UC_FROM_FALLBACK = 3, /* cache failed or unavailable, loaded */
} uc_source_t;

/*
 * Cache-aside read. Looks the entry up; on a hit returns it. On a miss, or
 * when the cache fails, calls loader(loader_arg) (never holding a lock),
 * stores its result with the keyspace TTL (best effort: a failed store is
 * counted, not returned) unless an invalidation of that entry happened since
 * the lookup, and returns it. A value that validator (may be NULL) rejects
 * is deleted and treated as a miss.
 *
 * Returns UC_OK with the value in *val and *len (the caller's, uc_free()) and
 * *source (may be NULL); a cache failure never fails the call; a loader
 * failure is returned as the loader's own code.
 */
int uc_keyspace_get_or_load(uc_keyspace_t *ks, const char *const *fields,
                            size_t nfields, uc_loader_fn loader,
                            void *loader_arg, uc_validator_fn validator,
                            void *validator_arg, char **val, size_t *len,
                            uc_source_t *source);

/* Statistics of this keyspace (a copy). */
void uc_keyspace_stats(const uc_keyspace_t *ks, uc_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* UTXOCACHE_KEYSPACE_H */
