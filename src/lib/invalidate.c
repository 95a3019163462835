/* SPDX-License-Identifier: MIT */
/*
 * Invalidation: deleting what a write made stale, and keeping what could not
 * be deleted pending until it is.
 *
 * A target (keys.c) names one entry or, with '*' fields, a set of entries of
 * one keyspace. Applying it is one UNLINK, or SCAN+UNLINK filtered by the
 * keyspace's exact shape. Deleting the key also deletes a lease in it, so a
 * fill that read the database before the write cannot store afterwards
 * (load.c). Why a fill racing a pattern invalidation cannot store old data:
 * SCAN returns every key that exists for the whole of the iteration, so a
 * lease taken before the invalidation began is found and deleted; a lease
 * taken after it began was taken after the write committed, and its loader
 * reads the committed row.
 *
 * The pending set holds the targets not yet applied: this process's failed
 * deletes (id 0, or the log record's id) and, when a durable log is
 * attached, every record the log says is pending in any process. While a
 * target is pending, get-or-load serves the entries it covers from the
 * loader. The worker retries the set each tick; one target's failure never
 * stops the others; identical targets are applied once. The set is bounded:
 * past UC_INVLOG_PENDING_MAX the keyspace is marked wholly pending and is
 * invalidated as a whole instead (counted, logged).
 *
 * A tag's target ("#<tag>") is applied by writing the tag a new random
 * version: every entry that recorded the old one reads as a miss from then
 * on (load.c), in one write whatever their number. While it is pending it
 * covers every entry, of any keyspace, that carries the tag.
 *
 * A whole dataset is invalidated when the store no longer trusts it (a
 * Redis restarted, restored, failed over or flushed): every key of a
 * declared keyspace and every tag version goes, then the store adopts the
 * dataset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_int.h"

#define APPLY_TRIES 3

int uc__pending_init(uc__pendset_t *p)
{
    p->items = calloc(UC_INVLOG_PENDING_MAX, sizeof(*p->items));
    if (p->items == NULL) {
        return UC_ENOMEM;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->items);
        p->items = NULL;
        return UC_ENOMEM;
    }
    p->n = 0;
    atomic_init(&p->count, 0);
    return UC_OK;
}

void uc__pending_release(uc__pendset_t *p)
{
    if (p->items != NULL) {
        pthread_mutex_destroy(&p->mu);
        free(p->items);
        p->items = NULL;
    }
}

uc_keyspace_t *uc__keyspace_by_name(uc_cache_t *c, const char *name)
{
    for (size_t i = 0; i < c->nks; i++) {
        if (strcmp(c->ks[i]->name, name) == 0) {
            return c->ks[i];
        }
    }
    return NULL;
}

int uc__pending_covers(uc_cache_t *c, const uc_keyspace_t *ks, const char *key,
                       size_t klen, const char *const *tags,
                       const size_t *taglens, size_t ntags)
{
    int covered = 0;

    if (atomic_load_explicit(&ks->all_pending, memory_order_acquire) != 0) {
        return 1;
    }
    if (atomic_load_explicit(&c->pending.count, memory_order_acquire) == 0) {
        return 0;
    }
    pthread_mutex_lock(&c->pending.mu);
    for (size_t i = 0; i < c->pending.n && !covered; i++) {
        const uc__pending_t *p = &c->pending.items[i];
        if (p->target[0] == UC__TAG_TARGET) {
            covered = uc__target_covers_tags(p->target, tags, taglens, ntags);
        } else {
            covered = p->ks == ks && uc__target_covers(p->target, key, klen);
        }
    }
    pthread_mutex_unlock(&c->pending.mu);
    return covered;
}

static void set_count(uc__pendset_t *p)
{
    atomic_store_explicit(&p->count, p->n, memory_order_release);
}

static void overflow(uc_cache_t *c, uc_keyspace_t *ks)
{
    if (ks == NULL) {
        /* A tag of no keyspace in particular: every keyspace with tags. */
        for (size_t i = 0; i < c->nks; i++) {
            if (c->ks[i]->ntags > 0) {
                overflow(c, c->ks[i]);
            }
        }
        return;
    }
    uc__near_evict_target(c, ks, "*");
    if (atomic_exchange(&ks->all_pending, 1) == 0) {
        UC__COUNT2(c, ks, invalidation_overflows);
        uc__log(&c->env, UC_LOG_WARN,
                "invalidations: more than %d pending; keyspace '%s' is "
                "invalidated as a whole",
                UC_INVLOG_PENDING_MAX, ks->name);
    }
}

void uc__near_evict_target(uc_cache_t *c, uc_keyspace_t *ks, const char *target)
{
    char fk[UC__FULLKEY_MAX];
    size_t tlen = strlen(target), fklen;

    /* A tag's flights are not told (which ones carry it is not known
     * here): a caller that joins a load checks the versions the load
     * recorded against the current ones, which this drop makes it read
     * anew, and goes on alone when they differ (load.c). */
    if (target[0] == UC__TAG_TARGET) {
        fklen = uc__tag_key(c, target + 1, tlen - 1, fk);
        if (fklen > 0 && c->near != NULL) {
            uc__near_invalidate(c->near, fk, fklen);
        }
        return;
    }
    /* Flights are told even without a near cache: a load in flight may
     * have read the database before this write, and no caller that starts
     * after it may join that load. */
    if (memchr(target, '*', tlen) != NULL) {
        if (c->near != NULL) {
            uc__near_flush_class(c->near, ks->cls);
        }
        uc__flight_notify_all(&c->flights, 1);
        return;
    }
    fklen = uc__full_key(c, target, tlen, fk);
    if (fklen > 0) {
        if (c->near != NULL) {
            uc__near_invalidate(c->near, fk, fklen);
        }
        uc__flight_notify(&c->flights, fk, fklen, 1);
    }
}

void uc__near_flush_dataset(uc_cache_t *c)
{
    if (c->near == NULL) {
        return;
    }
    uc__near_flush(c->near);
    uc__flight_notify_all(&c->flights, 1);
    atomic_fetch_add(&c->near_dataset_flushes, 1);
}

/* Adds a target under the lock; the caller holds c->pending.mu. */
static void add_locked(uc_cache_t *c, int64_t id, uc_keyspace_t *ks,
                       const char *target, uint64_t now)
{
    uc__pendset_t *p = &c->pending;

    for (size_t i = 0; i < p->n; i++) {
        const uc__pending_t *q = &p->items[i];
        if (q->id == id && q->ks == ks && strcmp(q->target, target) == 0) {
            return;
        }
    }
    if (p->n == UC_INVLOG_PENDING_MAX) {
        overflow(c, ks);
        return;
    }
    uc__pending_t *q = &p->items[p->n++];
    q->id = id;
    q->ks = ks;
    snprintf(q->target, sizeof(q->target), "%s", target);
    q->since_us = now;
    /* Pending reads bypass the near cache too, but a copy taken before
     * must not outlive the invalidation either. */
    uc__near_evict_target(c, ks, target);
}

static void add_pending(uc_cache_t *c, int64_t id, uc_keyspace_t *ks,
                        const char *target)
{
    uint64_t now = uc__now_us(&c->env);

    pthread_mutex_lock(&c->pending.mu);
    add_locked(c, id, ks, target, now);
    set_count(&c->pending);
    pthread_mutex_unlock(&c->pending.mu);
}

void uc__pending_from_log(uc_cache_t *c, const uc_inval_record_t *recs,
                          size_t n, int overflowed, uint64_t asked_us)
{
    uc__pendset_t *p = &c->pending;
    uint64_t now = uc__now_us(&c->env);
    size_t w = 0;

    pthread_mutex_lock(&p->mu);
    /* Log records seen pending before the query was sent and not in its
     * answer were applied meanwhile (here or elsewhere). Newer ones stay:
     * the query may have been answered before their write committed. */
    for (size_t i = 0; i < p->n; i++) {
        int keep = p->items[i].id == 0 || p->items[i].since_us >= asked_us;
        for (size_t j = 0; j < n && !keep; j++) {
            keep = recs[j].id == p->items[i].id;
        }
        if (keep) {
            p->items[w++] = p->items[i];
        }
    }
    p->n = w;
    /* Records this process applied and has not marked yet still read as
     * pending in the log: they are not pending here. */
    pthread_mutex_lock(&c->mark_mu);
    for (size_t j = 0; j < n; j++) {
        uc_keyspace_t *ks = uc__keyspace_by_name(c, recs[j].keyspace);
        int mine = 0;
        for (size_t k = 0; k < c->n_mark && !mine; k++) {
            mine = c->to_mark[k] == recs[j].id;
        }
        for (size_t k = 0; k < c->n_applying && !mine; k++) {
            mine = c->applying[k] == recs[j].id;
        }
        if ((ks != NULL || recs[j].target[0] == UC__TAG_TARGET) &&
            !recs[j].applied && !mine) {
            add_locked(c, recs[j].id, ks, recs[j].target, now);
        }
    }
    pthread_mutex_unlock(&c->mark_mu);
    if (overflowed) {
        for (size_t i = 0; i < c->nks; i++) {
            overflow(c, c->ks[i]);
        }
    }
    set_count(p);
    pthread_mutex_unlock(&p->mu);
}

/*
 * Writes a tag a new version, then drops this process's copy of it (the
 * flights check versions themselves). SET without NX: the new version
 * replaces whatever is there, so that a fill that read the old one before
 * this write records an outdated one. A raw write, which a distrusted
 * dataset still takes, like a delete.
 */
static int bump_tag(uc_cache_t *c, const char *target, size_t tlen)
{
    char fk[UC__FULLKEY_MAX], ver[17];
    size_t fklen = uc__tag_key(c, target + 1, tlen - 1, fk);
    int rc;

    if (fklen == 0) {
        return UC_EINVAL;
    }
    uc__tag_version_format(uc__tag_version_new(c), ver);
    rc = c->be->ops->set_inval != NULL
             ? c->be->ops->set_inval(c->be, fk, fklen, ver, 16,
                                     uc__tag_ttl_ms(c))
             : c->be->ops->set(c->be, fk, fklen, ver, 16, uc__tag_ttl_ms(c));
    uc__near_evict_target(c, NULL, target);
    return rc;
}

int uc__apply_target(uc_cache_t *c, uc_keyspace_t *ks, const char *target,
                     size_t *removed)
{
    char fk[UC__FULLKEY_MAX];
    size_t tlen = strlen(target);
    size_t fklen;
    size_t r = 0;
    int rc;

    if (target[0] == UC__TAG_TARGET) {
        rc = bump_tag(c, target, tlen);
        if (rc == UC_OK && removed != NULL) {
            *removed = 0;
        }
        return rc;
    }
    if (ks == NULL) {
        return UC_EINVAL;
    }
    fklen = uc__full_key(c, target, tlen, fk);
    if (fklen == 0) {
        return UC_EINVAL;
    }
    if (memchr(target, '*', tlen) == NULL) {
        int existed = 0;
        rc = c->be->ops->del(c->be, fk, fklen, &existed);
        r = existed ? 1 : 0;
    } else {
        const void *farg[2] = {ks, target};
        rc = c->be->ops->delete_pattern(c->be, fk, uc__target_filter,
                                        (void *)farg, &r);
    }
    /* After the delete: a reader of this process that read the old value
     * before it finds its ticket outdated or its copy gone, so the writer's
     * next read (and everyone's here) misses at once, without waiting for
     * Redis' message. */
    uc__near_evict_target(c, ks, target);
    if (rc == UC_OK && removed != NULL) {
        *removed = r;
    }
    return rc;
}

/* Applies a target now, with quick retries; counts the attempts. */
static int apply_now(uc_cache_t *c, uc_keyspace_t *ks, const char *target,
                     size_t *removed)
{
    int rc = UC_OK;

    UC__COUNT2(c, ks, invalidations);
    for (int attempt = 0; attempt < APPLY_TRIES; attempt++) {
        if (attempt > 0) {
            UC__COUNT2(c, ks, invalidation_retries);
        }
        rc = uc__apply_target(c, ks, target, removed);
        if (rc == UC_OK || rc == UC_EINVAL) {
            break;
        }
    }
    return rc;
}

static void note_failure(uc_cache_t *c, uc_keyspace_t *ks, const char *target,
                         int rc)
{
    UC__COUNT2(c, ks, invalidation_failures);
    UC__COUNT2(c, ks, errors);
    if (target[0] == UC__TAG_TARGET) {
        uc__log_limited(&c->env, &c->inval_log, UC_LOG_WARN,
                        "invalidate tag '%s': %s; pending, retried in the "
                        "background",
                        target + 1, uc_strerror(rc));
        return;
    }
    uc__log_limited(&c->env, &c->inval_log, UC_LOG_WARN,
                    "invalidate keyspace '%s': %s; pending, retried in the "
                    "background",
                    ks->name, uc_strerror(rc));
}

int uc_keyspace_target(const uc_keyspace_t *ks, const char *const *fields,
                       size_t nfields, char *buf, size_t cap, size_t *len)
{
    int all_set = 1;

    if (nfields != ks->nfields || (nfields > 0 && fields == NULL) ||
        buf == NULL || len == NULL) {
        return UC_EINVAL;
    }
    for (size_t i = 0; i < nfields; i++) {
        all_set &= fields[i] != NULL;
    }
    return uc__keyspace_build(ks, fields, nfields, !all_set, buf, cap, len);
}

int uc_keyspace_invalidate(uc_keyspace_t *ks, const char *const *fields,
                           size_t nfields, size_t *removed)
{
    uc_cache_t *c = ks->cache;
    char target[UC_KEY_MAX + 1];
    size_t tlen, r = 0;
    int rc =
        uc_keyspace_target(ks, fields, nfields, target, sizeof(target), &tlen);

    if (rc != UC_OK) {
        return UC_EINVAL;
    }
    rc = apply_now(c, ks, target, &r);
    if (rc != UC_OK) {
        add_pending(c, 0, ks, target);
        note_failure(c, ks, target, rc);
        return rc;
    }
    uc__refill_after(c, ks, target);
    if (removed != NULL) {
        *removed = r;
    }
    return UC_OK;
}

int uc_cache_invalidate_tag(uc_cache_t *cache, const char *tag)
{
    char target[UC_KEY_MAX + 1];
    size_t len;
    int rc;

    if (cache == NULL || tag == NULL) {
        return UC_EINVAL;
    }
    len = strlen(tag);
    if (!uc__tag_valid(tag, len)) {
        return UC_EINVAL;
    }
    target[0] = UC__TAG_TARGET;
    memcpy(target + 1, tag, len + 1);
    rc = apply_now(cache, NULL, target, NULL);
    if (rc != UC_OK) {
        add_pending(cache, 0, NULL, target);
        note_failure(cache, NULL, target, rc);
    } else {
        uc__refill_after(cache, NULL, target);
    }
    return rc;
}

int uc_keyspace_del(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, int *existed)
{
    size_t r = 0;
    int rc;

    for (size_t i = 0; i < nfields && fields != NULL; i++) {
        if (fields[i] == NULL) {
            return UC_EINVAL;
        }
    }
    rc = uc_keyspace_invalidate(ks, fields, nfields, &r);
    if (rc == UC_OK && existed != NULL) {
        *existed = r > 0;
    }
    return rc;
}

/* Registers a record this thread is applying (see cache_int.h); 0 when
 * the small table is full (then the worker may retry it once: harmless). */
static int hold_applying(uc_cache_t *c, int64_t id)
{
    int held = 0;

    pthread_mutex_lock(&c->mark_mu);
    if (c->n_applying < sizeof(c->applying) / sizeof(c->applying[0])) {
        c->applying[c->n_applying++] = id;
        held = 1;
    }
    pthread_mutex_unlock(&c->mark_mu);
    return held;
}

static void drop_applying(uc_cache_t *c, int64_t id)
{
    pthread_mutex_lock(&c->mark_mu);
    for (size_t k = 0; k < c->n_applying; k++) {
        if (c->applying[k] == id) {
            c->applying[k] = c->applying[--c->n_applying];
            break;
        }
    }
    pthread_mutex_unlock(&c->mark_mu);
}

/* Queues an applied record's id for the worker to mark; marks at once when
 * the queue is full. */
static void queue_mark(uc_cache_t *c, int64_t id)
{
    int64_t full[1] = {id};

    pthread_mutex_lock(&c->mark_mu);
    c->own[c->own_next++ % (sizeof(c->own) / sizeof(c->own[0]))] = id;
    if (c->n_mark < UC_INVLOG_PENDING_MAX) {
        c->to_mark[c->n_mark++] = id;
        pthread_mutex_unlock(&c->mark_mu);
        return;
    }
    pthread_mutex_unlock(&c->mark_mu);
    (void)c->log.mark_applied(c->log_arg, full, 1, uc__wall_ms());
}

void uc__marks_flush(uc_cache_t *c)
{
    int64_t *ids;
    size_t n;

    if (!atomic_load(&c->has_log)) {
        return;
    }
    pthread_mutex_lock(&c->mark_mu);
    n = c->n_mark;
    ids = n > 0 ? malloc(n * sizeof(*ids)) : NULL;
    if (ids != NULL) {
        memcpy(ids, c->to_mark, n * sizeof(*ids));
    }
    pthread_mutex_unlock(&c->mark_mu);
    if (ids == NULL) {
        return; /* nothing, or no memory: the next tick tries again */
    }
    /* The ids stay queued until the mark worked: a database that is down
     * gets them again on the next tick, and meanwhile this process does
     * not take its own applied records for pending ones. */
    if (c->log.mark_applied(c->log_arg, ids, n, uc__wall_ms()) == UC_OK) {
        pthread_mutex_lock(&c->mark_mu);
        /* Only this thread takes from the queue; others append after n. */
        memmove(c->to_mark, c->to_mark + n,
                (c->n_mark - n) * sizeof(*c->to_mark));
        c->n_mark -= n;
        pthread_mutex_unlock(&c->mark_mu);
    }
    free(ids);
}

int uc_cache_apply_invalidations(uc_cache_t *cache,
                                 const uc_inval_record_t *recs, size_t n,
                                 size_t *applied)
{
    size_t done = 0;
    int first = UC_OK;

    if (n > 0 && recs == NULL) {
        return UC_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        uc_keyspace_t *ks = uc__keyspace_by_name(cache, recs[i].keyspace);
        int rc;

        /* A tag is the same for every keyspace: its record may name any
         * or none. */
        if ((ks == NULL && recs[i].target[0] != UC__TAG_TARGET) ||
            (recs[i].target[0] == UC__TAG_TARGET &&
             !uc__tag_valid(recs[i].target + 1, strlen(recs[i].target + 1)))) {
            if (first == UC_OK) {
                first = UC_EINVAL;
            }
            continue;
        }
        int held = recs[i].id > 0 && hold_applying(cache, recs[i].id);
        rc = apply_now(cache, ks, recs[i].target, NULL);
        if (rc != UC_OK) {
            add_pending(cache, recs[i].id, ks, recs[i].target);
            note_failure(cache, ks, recs[i].target, rc);
            if (first == UC_OK) {
                first = rc;
            }
        } else {
            done++;
            uc__refill_after(cache, ks, recs[i].target);
            /* Marked by the worker within a tick: until then other
             * instances see the record pending and read the entry from the
             * database, which costs them hits, never freshness. */
            if (recs[i].id > 0 && atomic_load(&cache->has_log)) {
                queue_mark(cache, recs[i].id);
            }
        }
        /* Only now: pending or queued, it is accounted for either way. */
        if (held) {
            drop_applying(cache, recs[i].id);
        }
    }
    if (applied != NULL) {
        *applied = done;
    }
    return first;
}

/* One target of the retry pass, and the ids it stands for. */
typedef struct {
    uc_keyspace_t *ks;
    const char *target;
    int ok;
} retry_t;

void uc__pending_retry(uc_cache_t *c)
{
    uc__pendset_t *p = &c->pending;
    uc__pending_t *snap = NULL;
    retry_t *uniq = NULL;
    int64_t *ids = NULL;
    size_t n = 0, nu = 0, nids = 0;

    /* Whole keyspaces first: they cover everything else of theirs. */
    for (size_t i = 0; i < c->nks; i++) {
        uc_keyspace_t *ks = c->ks[i];
        if (atomic_load(&ks->all_pending) == 0) {
            continue;
        }
        const char *any[UC_KEYSPACE_FIELDS_MAX] = {NULL};
        char target[UC_KEY_MAX + 1];
        size_t tlen;
        if (uc_keyspace_target(ks, any, ks->nfields, target, sizeof(target),
                               &tlen) == UC_OK &&
            uc__apply_target(c, ks, target, NULL) == UC_OK) {
            atomic_store(&ks->all_pending, 0);
            UC__COUNT2(c, ks, invalidations_applied_late);
        }
    }
    if (atomic_load(&p->count) == 0) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    n = p->n;
    snap = malloc(n * sizeof(*snap) + 1);
    if (snap != NULL) {
        memcpy(snap, p->items, n * sizeof(*snap));
    }
    pthread_mutex_unlock(&p->mu);
    uniq = calloc(n + 1, sizeof(*uniq));
    ids = calloc(n + 1, sizeof(*ids));
    if (snap == NULL || uniq == NULL || ids == NULL) {
        goto cleanup;
    }
    /* De-duplicate: the same target pending several times is one delete. */
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < nu && !(uniq[j].ks == snap[i].ks &&
                           strcmp(uniq[j].target, snap[i].target) == 0)) {
            j++;
        }
        if (j == nu) {
            uniq[nu].ks = snap[i].ks;
            uniq[nu].target = snap[i].target;
            uniq[nu].ok = 0;
            nu++;
        }
    }
    for (size_t j = 0; j < nu; j++) {
        int rc = uc__apply_target(c, uniq[j].ks, uniq[j].target, NULL);
        if (rc == UC_OK) {
            uniq[j].ok = 1;
            UC__COUNT2(c, uniq[j].ks, invalidations_applied_late);
        } else {
            UC__COUNT2(c, uniq[j].ks, invalidation_retries);
        }
    }
    /* Drop what was applied, by identity, from the live set (which may have
     * changed meanwhile), and collect the log ids to mark. */
    pthread_mutex_lock(&p->mu);
    size_t w = 0;
    for (size_t i = 0; i < p->n; i++) {
        uc__pending_t *q = &p->items[i];
        int done = 0;
        for (size_t j = 0; j < nu && !done; j++) {
            done = uniq[j].ok && uniq[j].ks == q->ks &&
                   strcmp(uniq[j].target, q->target) == 0;
        }
        /* Only what the snapshot held: a newer record of the same target
         * may belong to a write that committed after our delete. */
        if (done) {
            int in_snap = 0;
            for (size_t k = 0; k < n && !in_snap; k++) {
                in_snap = snap[k].id == q->id && snap[k].ks == q->ks &&
                          snap[k].since_us == q->since_us &&
                          strcmp(snap[k].target, q->target) == 0;
            }
            done = in_snap;
        }
        if (done) {
            if (q->id > 0) {
                ids[nids++] = q->id;
            }
        } else {
            p->items[w++] = *q;
        }
    }
    p->n = w;
    set_count(p);
    pthread_mutex_unlock(&p->mu);
    if (nids > 0 && c->has_log) {
        (void)c->log.mark_applied(c->log_arg, ids, nids, uc__wall_ms());
    }

cleanup:
    free(snap);
    free(uniq);
    free(ids);
}

/* ---- a whole dataset ------------------------------------------------------
 */

/* Nonzero for a key of any declared keyspace or a tag's version (a flush
 * spares the rest). Versions go too: the dataset may hold older ones than
 * the tags' last invalidations, which entries elsewhere (other nodes of a
 * cluster) would then match again; a dropped one reads as changed. */
static int any_keyspace(void *arg, const char *key, size_t klen)
{
    const uc_cache_t *c = arg;

    if (klen < c->plen) {
        return 0;
    }
    if (klen > c->plen + UC__TAG_SPACE_LEN &&
        memcmp(key + c->plen, UC__TAG_SPACE, UC__TAG_SPACE_LEN) == 0) {
        return 1;
    }
    for (size_t i = 0; i < c->nks; i++) {
        if (uc__keyspace_matches(c->ks[i], key + c->plen, klen - c->plen,
                                 NULL)) {
            return 1;
        }
    }
    return 0;
}

int uc__trust_restore(uc_cache_t *c)
{
    uc__backend_t *be = c->be;
    char glob[UC__FULLKEY_MAX];
    size_t removed = 0;
    uint64_t epoch;
    int rc, lost;

    if (atomic_load(&be->distrust) == 0) {
        return UC_OK;
    }
    if (c->env.cfg.observer) {
        return UC_EUNAVAILABLE;
    }
    /* One restorer at a time. The others wait for it, boundedly (a drop of
     * a large dataset may take longer; they bypass the cache meanwhile). */
    struct timespec until = uc__deadline(
        CLOCK_REALTIME, 2u * (uint64_t)c->env.cfg.command_timeout_ms);
    if (pthread_mutex_timedlock(&c->trust_mu, &until) != 0) {
        return UC_EUNAVAILABLE;
    }
    if (atomic_load(&be->distrust) == 0) {
        pthread_mutex_unlock(&c->trust_mu);
        return UC_OK;
    }
    epoch = atomic_load(&be->distrust_epoch);
    uc__near_flush_dataset(c);
    uc__full_key(c, "*", 1, glob);
    lost = atomic_load(&be->trusted_once);
    if (be->ops->restore != NULL) {
        /* The store drops and adopts where it does not trust (one cluster
         * node after a failover), and says whether all is trusted. */
        rc = be->ops->restore(be, glob, any_keyspace, c, &removed);
    } else {
        rc = be->ops->delete_pattern(be, glob, any_keyspace, c, &removed);
        if (rc == UC_OK && atomic_load(&be->distrust_epoch) != epoch) {
            /* Yet another server appeared while this one was dropped. */
            rc = UC_EUNAVAILABLE;
        }
        if (rc == UC_OK) {
            rc = be->ops->adopt(be);
        }
    }
    if (rc == UC_OK) {
        /* What readers kept while the drop ran came from the old dataset. */
        uc__near_flush_dataset(c);
        /* The most read entries went with it: load them again. Not when
         * this is the first dataset the process trusts: nothing was lost,
         * and what it has read so far its first callers are loading now. */
        if (lost) {
            uc__warm_request(c);
        }
    }
    if (rc != UC_OK) {
        uc__log_limited(&c->env, &c->trust_log, UC_LOG_WARN,
                        "redis dataset changed; dropping the cache's keys "
                        "failed (%s), the cache stays bypassed",
                        uc_strerror(rc));
    } else if (epoch != c->seen_epoch) {
        c->seen_epoch = epoch;
        UC__COUNT(&c->totals, dataset_flushes);
        /* A first start on a new dataset drops nothing: not a warning. */
        uc__log(&c->env, removed > 0 ? UC_LOG_WARN : UC_LOG_INFO,
                "redis dataset is not the one this cache invalidated "
                "(new, restarted, restored, failed over or flushed): dropped "
                "%zu keys of its keyspaces before using it",
                removed);
    }
    pthread_mutex_unlock(&c->trust_mu);
    return rc;
}

int uc__applied_here(uc_cache_t *c, int64_t id)
{
    int found = 0;

    pthread_mutex_lock(&c->mark_mu);
    for (size_t k = 0; k < sizeof(c->own) / sizeof(c->own[0]) && !found; k++) {
        found = c->own[k] == id;
    }
    pthread_mutex_unlock(&c->mark_mu);
    return found;
}
