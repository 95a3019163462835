/* SPDX-License-Identifier: MIT */
/*
 * The durable invalidation log: how a writer makes an invalidation survive
 * a Redis outage, a partition or its own crash.
 *
 * The log lives in the application's database, next to the data it
 * describes. A write appends "keyspace K, target T is stale" (the target
 * from uc_keyspace_target()) in the same transaction as the write itself;
 * after the commit the writer calls uc_cache_apply_invalidations(), which
 * deletes the keys and marks the records applied. A record that could not
 * be applied stays pending in the log. The library's worker thread, in
 * every process attached to the log:
 *   - reads the pending records every log_tail_ms (UTXOCACHE_LOG_TAIL_MS,
 *     default 200 ms) and, while a record is pending, serves every matching
 *     entry from the loader, not from the cache;
 *   - retries them (de-duplicated, one record's failure never stops the
 *     others; past UC_INVLOG_PENDING_MAX pending records the whole keyspaces
 *     are invalidated instead, counted in invalidation_overflows) and marks
 *     them applied;
 *   - reads the records appended since its last position and evicts them
 *     from process-local stores (the memory backend), so several processes
 *     on the memory backend are coherent within the tail interval;
 *   - prunes applied records older than UC_INVLOG_KEEP_MS.
 *
 * The library only reads and marks the log, through the functions below,
 * which the application implements over its database. They are called from
 * the worker thread and from uc_cache_attach_log() /
 * uc_cache_apply_invalidations(); they must be thread-safe and bounded in
 * time, and must not call back into the cache.
 *
 * Ownership: records passed in are borrowed; arrays passed to the callbacks
 * are the library's. Thread safety: as the cache.
 */
#ifndef UTXOCACHE_INVLOG_H
#define UTXOCACHE_INVLOG_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "export.h"
#include "keyspace.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UC_INVLOG_PENDING_MAX 4096
/* Applied records are kept this long, so that every instance's tail sees
 * them before they go. */
#define UC_INVLOG_KEEP_MS (10u * 60u * 1000u)

/* One record: its position in the log, the keyspace and the target. */
typedef struct {
    int64_t id; /* > 0, increasing in append order */
    char keyspace[UC_KEYSPACE_NAME_MAX];
    char target[UC_KEY_MAX + 1];
    int applied; /* nonzero once marked applied (as read back) */
} uc_inval_record_t;

typedef struct {
    /* Records with id > after, oldest first, at most cap; *n set. */
    int (*after)(void *arg, int64_t after, uc_inval_record_t *out, size_t cap,
                 size_t *n);
    /* Records not yet applied, oldest first, at most cap; *n set. */
    int (*pending)(void *arg, uc_inval_record_t *out, size_t cap, size_t *n);
    /* Marks records applied at now_ms (wall clock); idempotent. */
    int (*mark_applied)(void *arg, const int64_t *ids, size_t n,
                        uint64_t now_ms);
    /* Deletes applied records older than before_ms (bounded work). */
    int (*prune)(void *arg, uint64_t before_ms);
    /* The highest id in the log, 0 when empty. */
    int (*last_id)(void *arg, int64_t *id);
    /* Each returns UC_OK or a negative code (any). */
} uc_invlog_ops_t;

/*
 * Attaches a log to the cache: reads what is pending (so the first read
 * after this call already bypasses those entries), tries to apply it, sets
 * the tail position to the log's end, and lets the worker tail it from then
 * on. `ops` is copied; `arg` must outlive the cache. Call once, before the
 * cache serves reads. Returns UC_OK, or the first error of the log's
 * functions (then nothing is attached and the message is in err).
 */
UC_EXPORT int uc_cache_attach_log(uc_cache_t *cache, const uc_invlog_ops_t *ops,
                                  void *arg, char *err, size_t errlen);

/*
 * Applies records a writer has just committed: for each, deletes the key
 * (or the keys matching the target, in its keyspace's shape), then marks
 * the applied ones in the log (one call). What fails stays pending, in the
 * log and in this process's pending set, and is retried by the worker.
 * Returns UC_OK when every record was applied, else the first error (the
 * rest is pending, not lost). *applied (may be NULL) counts the applied.
 */
UC_EXPORT int uc_cache_apply_invalidations(uc_cache_t *cache,
                                           const uc_inval_record_t *recs,
                                           size_t n, size_t *applied);

#ifdef __cplusplus
}
#endif
#endif /* UTXOCACHE_INVLOG_H */
