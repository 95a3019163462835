/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the core's files: the handle and keyspace structs, the
 * compiled form of a key pattern, and the functions each core file offers the
 * others. Layering, bottom up: env -> store (memory.c, redis.c, pool,
 * breaker) -> stats, keyspace, keys, entry -> invalidate (entries, pending
 * set, whole datasets) -> load -> worker, warm -> cache (the handle). No
 * file calls a layer above its own, but for uc__warm_request(), which only
 * wakes the warm's thread (a dataset dropped in invalidate.c asks for one).
 */
#ifndef UC_LIB_CACHE_INT_H
#define UC_LIB_CACHE_INT_H

#include <pthread.h>

#include "bg.h"
#include "flight.h"
#include "hot.h"
#include "near.h"
#include "stats.h"
#include "store.h"
#include "track.h"
#include "utxocache/invlog.h"
#include "utxocache/keyspace.h"

#define UC__KEYSPACES_MAX 64
/* Room for prefix + logical key. */
#define UC__FULLKEY_MAX (UC_PREFIX_MAX + UC_KEY_MAX + 16)

/* One piece of a compiled pattern: literal text or a field slot. */
typedef struct {
    const char *lit; /* NULL for a field */
    size_t len;
    size_t field; /* index, when lit == NULL */
} uc__part_t;

#define UC__TAGS_MAX UC_KEYSPACE_TAGS_MAX
/* After the prefix: where a tag's version lives ("<prefix>uc:tag:<tag>"). */
#define UC__TAG_SPACE "uc:tag:"
#define UC__TAG_SPACE_LEN (sizeof(UC__TAG_SPACE) - 1)
/* An invalidation target naming a tag starts with this (keys.c). */
#define UC__TAG_TARGET '#'

/* A compiled tag: a pattern over the keyspace's own fields. */
typedef struct {
    const char *pattern;
    size_t nparts;
    uc__part_t parts[2 * UC_KEYSPACE_FIELDS_MAX + 1];
} uc__tag_t;

struct uc_keyspace {
    uc_cache_t *cache;
    char name[UC_KEYSPACE_NAME_MAX];
    const char *pattern;
    uint32_t ttl_s;
    size_t max_value; /* payload cap, bytes */
    uc_loader_fn loader;
    void *loader_arg;
    uc_validator_fn validator;
    void *validator_arg;
    uint32_t stale_s;        /* serve-stale grace past the TTL */
    uint32_t negative_ttl_s; /* 0: "not found" not remembered */
    uint32_t jitter_pct;     /* +- percent of the TTL */
    double beta;             /* early refresh; 0: never */
    size_t cls;              /* index in the cache, the near-cache class */
    int near_budget_set;     /* near_budget given by the configuration */
    uint64_t near_budget;
    size_t nfields;
    char fields[UC_KEYSPACE_FIELDS_MAX][UC_KEYSPACE_NAME_MAX];
    size_t nparts;
    uc__part_t parts[2 * UC_KEYSPACE_FIELDS_MAX + 1];
    size_t ntags;
    uc__tag_t tags[UC__TAGS_MAX];
    /* Nonzero while the whole keyspace is to be treated as invalidated
     * (pending-set overflow): reads bypass it until the worker cleared it. */
    _Atomic int all_pending;
    uc__stats_t stats;
    _Atomic uint64_t load_avg_us; /* loads' average time here; 0: none yet */
    uc__hot_t *hot;               /* its most read entries (NULL: no record) */
    int refill_top; /* warm on write: how many of them; negative: none */
};

/* An invalidation not yet applied: from the log (id > 0) or local (id 0).
 * A tag's target ("#<tag>") covers entries of every keyspace; ks is then
 * the keyspace the record named, or NULL. */
typedef struct {
    int64_t id;
    uc_keyspace_t *ks;
    char target[UC_KEY_MAX + 1];
    uint64_t since_us; /* when this process first saw it pending */
} uc__pending_t;

typedef struct {
    pthread_mutex_t mu;
    uc__pending_t *items; /* UC_INVLOG_PENDING_MAX of them */
    size_t n;
    _Atomic size_t count; /* == n, read without the lock on every get */
} uc__pendset_t;

struct uc_cache {
    uc__env_t env;
    uc__backend_t *be;
    int local;   /* the store is process-local (memory backend) */
    size_t plen; /* strlen(env.cfg.key_prefix) */
    uc__stats_t totals;
    _Atomic size_t nks; /* published after ks[] is written (worker) */
    uc_keyspace_t *ks[UC__KEYSPACES_MAX];

    uc__pendset_t pending;
    uint64_t lease_seed; /* random, drawn at create */
    uc__ratelog_t inval_log, corrupt_log, trust_log;
    _Atomic uint64_t lease_counter;

    /* The durable log, when attached. */
    _Atomic int has_log; /* set last, after the fields below */
    uc_invlog_ops_t log;
    void *log_arg;
    int64_t tail_pos; /* every record <= this has been seen */
    /* Records applied here, to be marked in the log by the worker in one
     * call per tick (a write then takes the database's write lock once). */
    pthread_mutex_t mark_mu;
    int64_t *to_mark; /* UC_INVLOG_PENDING_MAX of them */
    size_t n_mark;
    /* Records being applied by a writer right now: the log already shows
     * them pending, and the worker must not take them for another
     * process's (its retry would delete the writer's next fill). */
    int64_t applying[64];
    size_t n_applying;
    /* Ids this process applied lately: a process-local store's tail skips
     * them (evicting again would only drop the writer's next fill). */
    int64_t own[1024];
    size_t own_next;
    uint64_t gap_since_us; /* a gap after tail_pos seen since then; 0 none */
    uc_inval_record_t *tail_buf; /* the worker's read buffer, kept */

    /* The near cache and its invalidation channel (both NULL without). */
    uc__near_t *near;
    uc__track_t *track;
    uc__flights_t flights;
    /* Loads nobody waits for: early refreshes, fills past the soft
     * timeout (load.c). */
    uc__bg_t bg;
    _Atomic uint64_t near_dataset_flushes;
    /* The warmer of the most read entries (warm.c). */
    struct uc__warm *warm;

    /* The worker thread. */
    pthread_t worker;
    int worker_running;
    pthread_mutex_t worker_mu;
    pthread_cond_t worker_cv;
    int worker_stop;
    pthread_mutex_t trust_mu; /* one dataset restore at a time */
    uint64_t seen_epoch;      /* distrust epoch last flushed (trust_mu) */
    uint64_t next_trust_us, next_prune_us;
};

/* ---- keyspace.c ---- */

int uc__keyspace_compile(uc_keyspace_t *ks, const uc_keyspace_def_t *def,
                         char *err, size_t errlen);

/*
 * Writes the key of ks for the given fields into buf; a NULL field is
 * written as the glob '*' when `glob` is set and is an error otherwise.
 */
int uc__keyspace_build(const uc_keyspace_t *ks, const char *const *fields,
                       size_t nfields, int glob, char *buf, size_t cap,
                       size_t *len);

/*
 * Nonzero when key[0..klen) (without prefix) has exactly ks's shape and
 * agrees with every non-NULL field (already escaped in `escaped`).
 */
int uc__keyspace_matches(const uc_keyspace_t *ks, const char *key, size_t klen,
                         const char *const *escaped);

/*
 * Parses a logical key of ks's shape back into its field values, unescaped
 * and NUL-terminated in buf, fields[i] pointing into it (pattern order).
 * UC_OK; UC_EINVAL when the key has another shape or an escape the library
 * does not write (its fields would build another key); UC_ETOOBIG when buf
 * is short (klen + ks->nfields + 1 bytes are always enough).
 */
int uc__keyspace_parse(const uc_keyspace_t *ks, const char *key, size_t klen,
                       char *buf, size_t cap, const char **fields);

/* Writes the text of tag i of ks for those fields (NULL allowed for fields
 * the tag does not use) into buf; UC_EINVAL, UC_ETOOBIG as key builds. */
int uc__tag_build(const uc_keyspace_t *ks, size_t i, const char *const *fields,
                  size_t nfields, char *buf, size_t cap, size_t *len);

/* ---- keys.c: every key shape the library writes ---- */

/* prefix + key[0..klen) into buf (UC__FULLKEY_MAX); its length, 0 if bad. */
size_t uc__full_key(const uc_cache_t *c, const char *key, size_t klen,
                    char *buf);

/* The full key of one entry of ks; UC_EINVAL on bad fields. */
int uc__entry_key(const uc_keyspace_t *ks, const char *const *fields,
                  size_t nfields, char *fk, size_t *fklen);

/*
 * Nonzero when the logical key (no prefix) is covered by target, a key of
 * ks's shape in which '*' stands for any one field value.
 */
int uc__target_covers(const char *target, const char *key, size_t klen);

/* Nonzero when a full key found by a scan has ks's shape and agrees with
 * target's set fields. */
int uc__target_filter(void *arg, const char *key, size_t klen);

/* Nonzero when tag[0..len) is a tag's text: 1 to UC_TAG_MAX bytes of
 * [A-Za-z0-9._:%-]. */
int uc__tag_valid(const char *tag, size_t len);

/* The full key of a tag's version into buf (UC__FULLKEY_MAX); its length,
 * 0 when the text is not a tag. */
size_t uc__tag_key(const uc_cache_t *c, const char *tag, size_t len, char *buf);

/* The full key of tag i of an entry of ks; UC_EINVAL on bad fields. */
int uc__entry_tag_key(const uc_keyspace_t *ks, size_t i,
                      const char *const *fields, size_t nfields, char *fk,
                      size_t *fklen);

/* Nonzero when target names a tag that one of the entry's tags
 * (tags[i][0..lens[i]), texts without prefix) is. */
int uc__target_covers_tags(const char *target, const char *const *tags,
                           const size_t *lens, size_t ntags);

/* How long a tag's version is kept (see keys.c). */
uint64_t uc__tag_ttl_ms(const uc_cache_t *c);

/* ---- entry.c: the envelope ---- */

/* Bytes the envelope adds in front of a value: the fixed part, and the
 * most with every tag version. */
#define UC__ENV_HEADER 48
#define UC__ENV_HEADER_MAX (UC__ENV_HEADER + 8 * UC__TAGS_MAX)
/* Bytes of a lease value. */
#define UC__LEASE_LEN 20

typedef struct {
    uint64_t produced_ms; /* wall clock */
    uint32_t load_us;     /* how long the load took (for early refresh) */
    uint64_t expires_ms;  /* logical expiry (for serve-stale) */
    uint64_t value_hash;  /* FNV-1a 64 of the payload */
    uint32_t ntags;       /* tag versions the value was built from */
    uint32_t flags;       /* UC__META_* */
    uint64_t tagv[UC__TAGS_MAX];
} uc__meta_t;

/* The value was stored by a refill after a write (warm.c). */
#define UC__META_REFILLED 1u

/* FNV-1a 64, the hash of keys and values in envelopes. */
uint64_t uc__hash64(const char *p, size_t n);

/* Writes the envelope of (fk, val) to a fresh buffer *out of *outlen. */
int uc__envelope_wrap(const char *fk, size_t fklen, const char *val, size_t len,
                      const uc__meta_t *meta, char **out, size_t *outlen);

/* A remembered "not found" (no payload), same header. */
int uc__negative_wrap(const char *fk, size_t fklen, const uc__meta_t *meta,
                      char **out, size_t *outlen);

/* A lease value; with env (an expired value's whole envelope, envlen > 0)
 * the lease carries it for the readers who wait. */
int uc__lease_wrap(const char *lease, const char *env, size_t envlen,
                   char **out, size_t *outlen);

typedef enum {
    UC__ENV_OK = 0,
    UC__ENV_LEASE = 1,       /* a fill in progress, not a value */
    UC__ENV_CORRUPT = 2,     /* no envelope, a broken one, or another key's */
    UC__ENV_NEGATIVE = 3,    /* a remembered "not found" (*len 0) */
    UC__ENV_LEASE_STALE = 4, /* a fill in progress over an expired value,
                                which is opened as for UC__ENV_OK */
    UC__ENV_OLD = 5,         /* an envelope of an earlier format */
} uc__env_verdict_t;

/*
 * Judges a stored buffer for full key fk. On UC__ENV_OK and
 * UC__ENV_LEASE_STALE moves the payload to the front of buf
 * (NUL-terminated), sets *len and *meta; on UC__ENV_NEGATIVE sets *meta.
 */
uc__env_verdict_t uc__envelope_open(const char *fk, size_t fklen, char *buf,
                                    size_t *len, uc__meta_t *meta);

/* A new random lease value (UC__LEASE_LEN bytes, not NUL-terminated). */
void uc__lease_new(uc_cache_t *c, char *out);

/* A new random tag version, never 0. */
uint64_t uc__tag_version_new(uc_cache_t *c);

/* A version as stored: 16 lower-case hex digits (out has 17 bytes). */
void uc__tag_version_format(uint64_t v, char out[17]);

/* The version a stored value stands for: its 16 hex digits, or, for
 * anything else an operator wrote there, a hash of its bytes. */
uint64_t uc__tag_version_parse(const char *val, size_t len);

/* One 64-bit digest of n versions, never 0 (0: no versions recorded). */
uint64_t uc__tags_digest(const uint64_t *v, size_t n);

/* ---- invalidate.c ---- */

int uc__pending_init(uc__pendset_t *p);
void uc__pending_release(uc__pendset_t *p);

/* Nonzero when an invalidation covering this entry, or one of its tags
 * (texts without prefix), is pending. */
int uc__pending_covers(uc_cache_t *c, const uc_keyspace_t *ks, const char *key,
                       size_t klen, const char *const *tags,
                       const size_t *taglens, size_t ntags);

/*
 * Deletes what a target names, now: one UNLINK or SCAN+UNLINK in ks's shape;
 * a tag's target writes the tag a new version (ks may then be NULL).
 * *removed (may be NULL) counts the keys.
 */
int uc__apply_target(uc_cache_t *c, uc_keyspace_t *ks, const char *target,
                     size_t *removed);

/* Evicts what a target of ks names from the near cache (a whole keyspace
 * for a glob, a tag's version for a tag) and wakes the flights waiting on
 * it (none for a tag: joiners check tag versions themselves). */
void uc__near_evict_target(uc_cache_t *c, uc_keyspace_t *ks,
                           const char *target);

/* Drops the whole near cache: the dataset behind it changed. */
void uc__near_flush_dataset(uc_cache_t *c);

/* The worker's pass over the pending set: retries, marks applied. */
void uc__pending_retry(uc_cache_t *c);

/* Nonzero when this process applied record id lately (id > 0). */
int uc__applied_here(uc_cache_t *c, int64_t id);

/* Marks in the log what this process applied since the last call. */
void uc__marks_flush(uc_cache_t *c);

/* Replaces the log-sourced part of the pending set with what the log holds
 * (local entries stay). `overflow` when the log had more than fit. */
void uc__pending_from_log(uc_cache_t *c, const uc_inval_record_t *recs,
                          size_t n, int overflow, uint64_t asked_us);

uc_keyspace_t *uc__keyspace_by_name(uc_cache_t *c, const char *name);

/*
 * Drops every key of the declared keyspaces and adopts the dataset when the
 * store distrusts it. UC_OK when trusted afterwards; UC_EUNAVAILABLE when
 * another thread is at it past a bounded wait; else the store's error.
 */
int uc__trust_restore(uc_cache_t *c);

/* ---- worker.c ---- */

int uc__worker_start(uc_cache_t *c);
void uc__worker_stop(uc_cache_t *c);
/* Runs one tick synchronously (tests drive the worker with it). */
void uc__worker_tick(uc_cache_t *c);

/* ---- warm.c: the most read entries, warmed ---- */

typedef struct uc__warm uc__warm_t;

/* The handle's warmer, idle (no thread yet). UC_OK or UC_ENOMEM. */
int uc__warm_create(uc_cache_t *c);

/* Stops a warm in progress after its current get-or-load and joins the
 * thread; no warm starts after it. Accepts a handle without a warmer. */
void uc__warm_stop(uc_cache_t *c);

/* uc__warm_stop(), then frees the warmer: after the worker stopped, which
 * asks for warms and ticks the records. */
void uc__warm_destroy(uc_cache_t *c);

/* Gives ks its record of most read entries as configured (none when
 * hot_capacity is negative). UC_OK or UC_ENOMEM. */
int uc__warm_keyspace(uc_cache_t *c, uc_keyspace_t *ks);

/*
 * Asks for a warm: the dataset was dropped, or keyspaces were declared.
 * Never waits for a warm; one in progress starts again from the hottest
 * entry. Nothing happens while no keyspace with a loader has hot entries.
 */
void uc__warm_request(uc_cache_t *c);

/* The worker's tick: halves the records' counts every 10 minutes. */
void uc__warm_tick(uc_cache_t *c, uint64_t now_us);

/* Nonzero while a warm is queued or running (tests). */
int uc__warm_busy(uc_cache_t *c);

/* Writes every warmed keyspace's most read entries to the store, as
 * <prefix>uc:hot:<keyspace> ("reads key" lines, the hottest first), where a
 * starting instance reads them to warm what the others read (the worker,
 * every minute; tests). */
void uc__warm_publish(uc_cache_t *c);

/*
 * Warm on write: called after this process applied the invalidation of
 * `target` (a key of ks, or a tag "#<tag>", ks then ignored) for a write.
 * Queues a refill of the entry when it is among ks's refill_top most read
 * (a tag: of the entries carrying it, found by the warm thread); never
 * blocks on a load. Counts what it skips.
 */
void uc__refill_after(uc_cache_t *c, uc_keyspace_t *ks, const char *target);

/* Nonzero on the thread while a refill loads (its value is marked). */
int uc__refilling(void);

/* ---- stats.c: counting into the handle and a keyspace ---- */

void uc__count_get(uc_cache_t *c, uc_keyspace_t *ks, int rc, uint64_t t0);
void uc__count_set(uc_cache_t *c, uc_keyspace_t *ks, int rc, uint64_t t0);
void uc__count_error(uc_cache_t *c, uc_keyspace_t *ks);

/* Counts one event in the totals and in ks (may be NULL). */
#define UC__COUNT2(c, ks, field)                                               \
    do {                                                                       \
        UC__COUNT(&(c)->totals, field);                                        \
        if ((ks) != NULL) {                                                    \
            UC__COUNT(&(ks)->stats, field);                                    \
        }                                                                      \
    } while (0)

#endif
