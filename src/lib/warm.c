/* SPDX-License-Identifier: MIT */
/*
 * Warming: after the core dropped a Redis dataset it could not trust (a
 * FLUSHALL, a restarted Redis, a failover), and on uc_cache_warm(), the
 * most read entries of every keyspace that has its own loader are read
 * through get-or-load again, in the background, before clients ask for
 * them. Which entries are the most read is the keyspace's record (hot.c).
 * At start, an instance also warms what the others read most: each one
 * writes its record's top to the store every minute (uc__warm_publish), and
 * a starting one counts those keys in its own record and warms them
 * (uc__warm_tick), which fills its near cache from Redis without loads.
 *
 * One thread per handle, started on the first warm that has something to
 * do, runs one warm at a time: the hottest entries of all keyspaces first
 * (the lists merged by their reads), one get-or-load after the other. So
 * leases, single-flight, pending invalidations and the dataset's trust
 * apply to a warm exactly as to a client's read, and the warm holds at most
 * one database query at any time. Why not the pool of background loads
 * (bg.c): its queue is for loads a client triggered (early refreshes, fills
 * past the soft timeout), and a thousand warm loads in it would push those
 * back onto the clients' threads; a paced loop also needs a thread it may
 * make wait.
 *
 * Rate: a token bucket of warm_rate loads a second with a burst of a tenth
 * of that (at least one). The warm's loader is a wrapper of the keyspace's
 * that takes a token, so an entry still cached (a hit, near or in Redis)
 * costs none; the bucket is waited on before each get-or-load. Passing the
 * loader in the call's options also keeps the whole load on this thread
 * (the library moves only the keyspace's own loader to the pool).
 *
 * The thread also stops a warm that would only load for nothing or add to
 * a failing database's load: when the dataset is distrusted (the restore
 * that follows queues a new warm), when the cache answers "unavailable" (a
 * load would not be stored), and after FAILURES_MAX failed loads in a row.
 * A new dataset dropped while a warm runs restarts it from the hottest
 * entry.
 * uc_cache_destroy() stops it after the get-or-load in progress.
 *
 * Refills (warm on write): the same thread loads again, right after a write
 * of this process invalidated it, an entry that is among its keyspace's
 * refill_top most read, so that the read after a write is a hit. The write
 * only queues the target (a key, or a tag whose entries the thread finds
 * among the most read); the thread serves the queue before every warm
 * entry and while it waits for a warm token. A refill is a get-or-load
 * like a client's: under the entry's lease (so across instances the one
 * that wins the lease loads, the others find the value), after the write's
 * commit (the write invalidated after it), stored with the guarded
 * compare-and-set, and a write that lands meanwhile makes it a miss as it
 * would a client's fill. Only the writing process refills: others learn of
 * the write through the invalidation log or the channel and never queue.
 * Bounds: a queue of REFILL_QUEUE_MAX targets (a full queue drops the
 * refill, never the invalidation, which was applied before), a token bucket
 * of refill_rate a second per keyspace (past it, skipped), no refill while
 * the cache's breaker is open, and after REFILL_FAILURES_MAX failed loads
 * in a row of a keyspace a pause (1 s, doubling up to 30 s) in which its
 * refills are skipped: the database breaker of background loads. A stored
 * refill marks its envelope, so reads it answers are counted
 * (refill_hits).
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"

/* Refills: targets queued at most, loads in a row that may fail before a
 * keyspace's refills pause, and how long the pause may grow. */
#define REFILL_QUEUE_MAX 256
#define REFILL_FAILURES_MAX 3
#define REFILL_PAUSE_FIRST_US 1000000ull
#define REFILL_PAUSE_MAX_US 30000000ull
/* How long a keyspace's list of most read entries is reused to find the
 * entries of an invalidated tag. */
#define REFILL_SNAPSHOT_US 1000000ull
/* How long a refill waits for its own store's invalidation to come back
 * before it reads the entry back into the near cache. */
#define SETTLE_WAIT_MS 10

/* Reads of a keyspace per write of it below which refills would add loads
 * rather than save them (read_enough()). */
#define REFILL_READS_PER_WRITE 3u

/* A refill's target: an entry's logical key, or a tag ("#<tag>", ks NULL). */
typedef struct {
    uc_keyspace_t *ks;
    uint64_t seq; /* the order of the queue, for the writer's wait */
    char target[UC_KEY_MAX + 1];
} refill_job_t;

/* A keyspace's refill state (the warm thread's alone). */
typedef struct {
    double tokens;
    uint64_t refill_us;
    unsigned failing;
    uint64_t pause_us;
    uint64_t paused_until_us;
    uint64_t writes;      /* invalidations of it by this process's writes */
    uc_hot_entry_t *snap; /* its most read entries, for tags */
    size_t nsnap;
    uint64_t snap_at_us;
    /* The tags of snap's entries, so that a write's tag finds its entry in
     * one probe: open addressing (linear probing) over tag_mask + 1 slots,
     * the tag text's hash and 1 + the index in snap of the most read entry
     * carrying it (0: empty). Built with each snapshot. */
    uint64_t *tag_hash;
    uint32_t *tag_at;
    uint32_t tag_mask;
} refill_ks_t;

/* The shared list of most read entries: written this often, kept this long
 * in the store, at most this many bytes; a key read from it is counted at
 * most SEED_COUNT_MAX times; a list the store cannot give is tried again on
 * SEED_TRIES ticks. */
#define HOT_PUBLISH_US (60ull * 1000000ull)
#define HOT_LIST_TTL_MS (600ull * 1000ull)
#define HOT_LIST_MAX (256u * 1024u)
#define SEED_COUNT_MAX 256ull
#define SEED_TRIES 50u

/* Counts halve this often (uc__warm_tick). */
#define HALVE_EVERY_US (600ull * 1000000ull)
/* An idle thread looks for a stop this often (it is also woken). */
#define IDLE_WAIT_MS 1000u

struct uc__warm {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    pthread_t thread;
    int started; /* the thread runs */
    int stop;
    int queued;  /* a warm is asked for */
    int running; /* a warm is in progress */
    /* The warm thread's alone. */
    double tokens;
    uint64_t refill_us;
    /* The worker's alone. */
    uint64_t next_halve_us;
    /* Refills: a ring of targets under mu (allocated with the first). */
    refill_job_t *jobs;
    size_t jhead, jn;
    int refilling;     /* a job taken off the ring is being run */
    uint64_t seq_last; /* the newest job's seq */
    uint64_t seq_done; /* every job up to this one is done */
    refill_ks_t rks[UC__KEYSPACES_MAX]; /* the warm thread's */
    /* The shared list of most read entries (the worker's alone). */
    uint64_t next_publish_us;
    unsigned char seeded[UC__KEYSPACES_MAX];
    unsigned seed_tries[UC__KEYSPACES_MAX];
};

/* Nonzero on the warm thread while it refills (load.c marks the value). */
static _Thread_local int tl_refilling;
/* Nonzero on the warm thread: it never waits for its own queue. */
static _Thread_local int tl_warm_thread;

int uc__refilling(void)
{
    return tl_refilling;
}

static void serve_refills(uc_cache_t *c);

/* One keyspace's most read entries, as a warm found them. */
typedef struct {
    uc_keyspace_t *ks;
    uc_hot_entry_t *e;
    size_t n, at;
} list_t;

typedef struct {
    uc_cache_t *c;
    uc_keyspace_t *ks;
    unsigned loads;
    unsigned failed; /* loads that answered an error */
    int takes_token; /* a warm's load: it spends a warm token */
} wctx_t;

typedef struct {
    uint64_t loads, hits, skipped;
    unsigned failing; /* loads in a row that failed */
} tally_t;

/* Loads in a row that may fail before a warm gives up: the database is
 * failing, and the live traffic needs what it can still answer. */
#define FAILURES_MAX 3

/* What warm_one() tells the run: go on, end (the handle goes, a new warm
 * was asked for, the dataset is distrusted), or give up on the entries
 * left (the cache or the database fails). */
enum { GO_ON, HALT, GIVE_UP };

/* ---- the token bucket (the warm thread's) ---------------------------------
 */

/* The burst of a bucket of `rate` tokens a second: a tenth, at least 1. */
static double burst_of(double rate)
{
    return rate / 10.0 < 1.0 ? 1.0 : rate / 10.0;
}

static double burst(const uc_cache_t *c)
{
    return burst_of((double)c->env.cfg.warm_rate);
}

/* Adds the tokens earned since *at_us (a bucket never filled yet, *at_us
 * 0, starts full), capped at the burst. The warm's and the refills'. */
static void bucket_fill(double *tokens, uint64_t *at_us, double rate,
                        uint64_t now)
{
    if (*at_us == 0) {
        *tokens = burst_of(rate);
    } else if (now > *at_us) {
        *tokens += (double)(now - *at_us) * rate / 1e6;
    }
    if (*tokens > burst_of(rate)) {
        *tokens = burst_of(rate);
    }
    *at_us = now;
}

static void refill(uc_cache_t *c)
{
    uc__warm_t *w = c->warm;

    bucket_fill(&w->tokens, &w->refill_us, (double)c->env.cfg.warm_rate,
                uc__now_us(&c->env));
}

/* Nonzero when the warm in progress is to end now: the handle goes, or a
 * new warm was asked for (a dataset dropped meanwhile). */
static int halted(uc__warm_t *w)
{
    int h;

    pthread_mutex_lock(&w->mu);
    h = w->stop || w->queued;
    pthread_mutex_unlock(&w->mu);
    return h;
}

/* Waits until a token is there; 0 when the warm is halted meanwhile. */
static int token_wait(uc_cache_t *c)
{
    uc__warm_t *w = c->warm;

    for (;;) {
        serve_refills(c);
        refill(c);
        if (w->tokens >= 1.0) {
            return 1;
        }
        double us = (1.0 - w->tokens) * 1e6 / (double)c->env.cfg.warm_rate;
        uint64_t ms = (uint64_t)(us / 1000.0) + 1;
        struct timespec ts = uc__deadline(CLOCK_MONOTONIC, ms);
        pthread_mutex_lock(&w->mu);
        if (w->stop || w->queued) {
            pthread_mutex_unlock(&w->mu);
            return 0;
        }
        if (w->jn == 0) {
            (void)pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        pthread_mutex_unlock(&w->mu);
    }
}

/* The keyspace's loader, counted (and for a warm behind a token: only a
 * real load pays). The warm's and the refills'. */
static int counted_loader(void *arg, const char *const *fields, size_t nfields,
                          char **val, size_t *len)
{
    wctx_t *x = arg;
    int rc;

    x->loads++;
    if (x->takes_token) {
        x->c->warm->tokens -= 1.0;
    }
    rc = x->ks->loader(x->ks->loader_arg, fields, nfields, val, len);
    if (rc != UC_OK && rc != UC_MISS) {
        x->failed++;
    }
    return rc;
}

/* ---- one warm -------------------------------------------------------------
 */

/* Whether an invalidation of the entry or of one of its tags is pending: a
 * load now would be bypassed by its readers anyway. */
static int pending_covers(uc_cache_t *c, const uc_keyspace_t *ks,
                          const char *key, size_t klen,
                          const char *const *fields)
{
    char text[UC__TAGS_MAX][UC_KEY_MAX + 1];
    const char *tags[UC__TAGS_MAX];
    size_t lens[UC__TAGS_MAX];

    for (size_t i = 0; i < ks->ntags; i++) {
        if (uc__tag_build(ks, i, fields, ks->nfields, text[i], sizeof(text[i]),
                          &lens[i]) != UC_OK) {
            return 1; /* cannot tell: do not load */
        }
        tags[i] = text[i];
    }
    return uc__pending_covers(c, ks, key, klen, tags, lens, ks->ntags);
}

/* ---- refills (warm on write) ---------------------------------------------
 */

/* Whether the keyspace may refill now: breaker, pause and rate (a token is
 * taken when it may). Counts the skip when not. */
static int refill_allowed(uc_cache_t *c, uc_keyspace_t *ks, refill_ks_t *r)
{
    uc_pool_stats_t ps;
    uint64_t now = uc__now_us(&c->env);

    memset(&ps, 0, sizeof(ps));
    if (c->be->ops->pool_stats != NULL) {
        c->be->ops->pool_stats(c->be, &ps);
    }
    if (ps.breaker == UC_BREAKER_OPEN || now < r->paused_until_us) {
        UC__COUNT2(c, ks, refill_skipped_breaker);
        return 0;
    }
    bucket_fill(&r->tokens, &r->refill_us, (double)c->env.cfg.refill_rate, now);
    if (r->tokens < 1.0) {
        UC__COUNT2(c, ks, refill_skipped_rate);
        return 0;
    }
    r->tokens -= 1.0;
    return 1;
}

/*
 * Whether the keyspace is read often enough between its writes for a
 * refill to save loads: a refill loads once per write, a miss once per
 * write followed by a read, so where writes come about as often as reads
 * (a user's own feedback pages, an insight's comment pages) refills only
 * add loads. The keyspace's reads since start against this process's
 * writes of it; counts the write, and a cold skip when not.
 */
static int read_enough(uc_cache_t *c, uc_keyspace_t *ks, refill_ks_t *r)
{
    uc_stats_t s;

    r->writes++;
    uc_keyspace_stats(ks, &s);
    if (s.hits + s.misses < REFILL_READS_PER_WRITE * r->writes) {
        UC__COUNT2(c, ks, refill_skipped_cold);
        return 0;
    }
    return 1;
}

/* A refill's get-or-load: not counted as a client's read, its value
 * dropped (it was stored, or found stored). */
static int refill_read(uc_keyspace_t *ks, const char *const *fields,
                       const uc_load_opts_t *opts)
{
    uc_load_result_t res;
    int rc;

    memset(&res, 0, sizeof(res));
    tl_refilling = 1;
    rc = uc_keyspace_get_or_load(ks, fields, ks->nfields, opts, &res);
    tl_refilling = 0;
    if (rc == UC_OK) {
        uc_shared_release(res.data);
    }
    return rc;
}

/* Loads one entry again (its fields parsed from key), if allowed. */
static void refill_entry(uc_cache_t *c, uc_keyspace_t *ks, const char *key,
                         size_t klen, const char *const *fields)
{
    refill_ks_t *r = &c->warm->rks[ks->cls];
    uc_load_opts_t opts = UC_LOAD_OPTS_INIT;
    wctx_t x = {c, ks, 0, 0, 0};
    int rc;

    if (atomic_load(&c->be->distrust) != 0 ||
        pending_covers(c, ks, key, klen, fields)) {
        return; /* nothing it loaded would be stored */
    }
    if (!refill_allowed(c, ks, r)) {
        return;
    }
    opts.loader = counted_loader;
    opts.loader_arg = &x;
    opts.flags = UC_LOAD_SHARED;
    rc = refill_read(ks, fields, &opts);
    if (x.loads == 0) {
        /* A read here or another instance filled it first. */
        UC__COUNT2(c, ks, refill_raced);
        return;
    }
    if (x.failed > 0) {
        if (++r->failing >= REFILL_FAILURES_MAX) {
            r->pause_us = r->pause_us == 0 ? REFILL_PAUSE_FIRST_US
                          : r->pause_us * 2 > REFILL_PAUSE_MAX_US
                              ? REFILL_PAUSE_MAX_US
                              : r->pause_us * 2;
            r->paused_until_us = uc__now_us(&c->env) + r->pause_us;
            uc__log(&c->env, UC_LOG_WARN,
                    "refill: keyspace '%s': the loader failed %u times in a "
                    "row; refills pause for %llu ms",
                    ks->name, r->failing,
                    (unsigned long long)(r->pause_us / 1000u));
        }
        return;
    }
    r->failing = 0;
    r->pause_us = 0;
    UC__COUNT2(c, ks, refills);
    if (rc == UC_OK && c->near != NULL && ks->near_budget > 0 &&
        c->track != NULL && uc__track_barrier(c->track, SETTLE_WAIT_MS)) {
        /* The store's own invalidation came back through the channel and
         * took the near copy the fill had kept: read it back from Redis
         * now that it is behind us, so that the read after the write is a
         * near hit. A write since then makes this a miss that loads. */
        (void)refill_read(ks, fields, &opts);
    }
}

/* A key target: refilled when it is among the keyspace's most read. */
static void refill_key(uc_cache_t *c, uc_keyspace_t *ks, const char *key)
{
    const char *fields[UC_KEYSPACE_FIELDS_MAX];
    char buf[UC_KEY_MAX + UC_KEYSPACE_FIELDS_MAX + 1];
    size_t klen = strlen(key);

    if (uc__keyspace_parse(ks, key, klen, buf, sizeof(buf), fields) != UC_OK ||
        !read_enough(c, ks, &c->warm->rks[ks->cls])) {
        return;
    }
    refill_entry(c, ks, key, klen, fields);
}

/* A tag text's hash for the snapshot's index (FNV-1a: the texts are the
 * library's own, from the process's own entries). */
static uint64_t tag_hash(const char *text, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3ull;
    }
    return h;
}

/* Fills r's tag index from r->snap, most read first, so that each tag
 * keeps its hottest entry. Without memory for it, the index is empty and
 * every tag reads as cold. */
static void tag_index_build(uc_keyspace_t *ks, refill_ks_t *r)
{
    size_t want = 2 * (r->nsnap * ks->ntags + 1), slots = 16;

    while (slots < want) {
        slots *= 2;
    }
    if (r->tag_hash == NULL || (size_t)r->tag_mask + 1 < slots) {
        free(r->tag_hash);
        free(r->tag_at);
        r->tag_hash = malloc(slots * sizeof(*r->tag_hash));
        r->tag_at = malloc(slots * sizeof(*r->tag_at));
        if (r->tag_hash == NULL || r->tag_at == NULL) {
            free(r->tag_hash);
            free(r->tag_at);
            r->tag_hash = NULL;
            r->tag_at = NULL;
            r->tag_mask = 0;
            return;
        }
        r->tag_mask = (uint32_t)(slots - 1);
    }
    memset(r->tag_at, 0, ((size_t)r->tag_mask + 1) * sizeof(*r->tag_at));
    for (size_t j = 0; j < r->nsnap; j++) {
        const char *fields[UC_KEYSPACE_FIELDS_MAX];
        char buf[UC_HOT_KEY_MAX + UC_KEYSPACE_FIELDS_MAX + 1];
        const char *key = r->snap[j].key;

        if (uc__keyspace_parse(ks, key, strlen(key), buf, sizeof(buf),
                               fields) != UC_OK) {
            continue;
        }
        for (size_t t = 0; t < ks->ntags; t++) {
            char text[UC_KEY_MAX + 1];
            size_t len = 0;

            if (uc__tag_build(ks, t, fields, ks->nfields, text, sizeof(text),
                              &len) != UC_OK) {
                continue;
            }
            uint64_t h = tag_hash(text, len);
            uint32_t i = (uint32_t)h & r->tag_mask;
            /* A hash seen already: a hotter entry carries the tag (two
             * tags of one hash would lose the second's refill, no more). */
            while (r->tag_at[i] != 0 && r->tag_hash[i] != h) {
                i = (i + 1) & r->tag_mask;
            }
            if (r->tag_at[i] == 0) {
                r->tag_hash[i] = h;
                r->tag_at[i] = (uint32_t)j + 1;
            }
        }
    }
}

/* The keyspace's most read entries, reused for REFILL_SNAPSHOT_US. */
static void refill_snapshot(uc_cache_t *c, uc_keyspace_t *ks, refill_ks_t *r)
{
    uint64_t now = uc__now_us(&c->env);
    size_t top = (size_t)ks->refill_top;

    if (r->snap != NULL && now - r->snap_at_us < REFILL_SNAPSHOT_US) {
        return;
    }
    if (r->snap == NULL) {
        r->snap = malloc(top * sizeof(*r->snap));
        if (r->snap == NULL) {
            r->nsnap = 0;
            return;
        }
    }
    r->nsnap = uc__hot_top(ks->hot, r->snap, top);
    if (r->nsnap > top) {
        r->nsnap = top;
    }
    r->snap_at_us = now;
    tag_index_build(ks, r);
}

/* Whether text has the shape of tag t of ks (its literals where they are,
 * escaped field bytes between them). */
static int tag_shaped(const uc_keyspace_t *ks, size_t t, const char *text,
                      size_t len)
{
    const uc__tag_t *tag = &ks->tags[t];
    size_t pos = 0;

    for (size_t i = 0; i < tag->nparts; i++) {
        const uc__part_t *p = &tag->parts[i];
        if (p->lit != NULL) {
            if (len - pos < p->len || memcmp(text + pos, p->lit, p->len) != 0) {
                return 0;
            }
            pos += p->len;
            continue;
        }
        size_t start = pos;
        while (pos < len &&
               (isalnum((unsigned char)text[pos]) || text[pos] == '.' ||
                text[pos] == '_' || text[pos] == '-' || text[pos] == '%')) {
            pos++;
        }
        if (pos == start) {
            return 0;
        }
    }
    return pos == len;
}

/* A tag target: the most read entry carrying the tag, in each keyspace
 * that refills (found in the keyspace's list, tag built from its fields).
 * A keyspace whose tag has the shape but no hot entry carrying it counts a
 * cold skip. */
static void refill_tag(uc_cache_t *c, const char *tag)
{
    size_t nks = atomic_load(&c->nks), tlen = strlen(tag);

    for (size_t i = 0; i < nks; i++) {
        uc_keyspace_t *ks = c->ks[i];
        refill_ks_t *r = &c->warm->rks[ks->cls];

        if (ks->ntags == 0 || ks->loader == NULL || ks->hot == NULL ||
            ks->refill_top <= 0) {
            continue;
        }
        int shaped = 0, found = 0;
        for (size_t t = 0; t < ks->ntags && !shaped; t++) {
            shaped = tag_shaped(ks, t, tag, tlen);
        }
        if (!shaped || !read_enough(c, ks, r)) {
            continue;
        }
        refill_snapshot(c, ks, r);
        uint64_t h = tag_hash(tag, tlen);
        for (uint32_t at = (uint32_t)h & r->tag_mask;
             r->tag_at != NULL && r->tag_at[at] != 0 && !found;
             at = (at + 1) & r->tag_mask) {
            const char *fields[UC_KEYSPACE_FIELDS_MAX];
            char buf[UC_HOT_KEY_MAX + UC_KEYSPACE_FIELDS_MAX + 1];
            const char *key;
            size_t klen;
            int carries = 0;

            if (r->tag_hash[at] != h) {
                continue;
            }
            key = r->snap[r->tag_at[at] - 1].key;
            klen = strlen(key);
            if (uc__keyspace_parse(ks, key, klen, buf, sizeof(buf), fields) !=
                UC_OK) {
                continue;
            }
            /* The hash said so; the tag's own text decides. */
            for (size_t t = 0; t < ks->ntags && !carries; t++) {
                char text[UC_KEY_MAX + 1];
                size_t len = 0;
                carries = uc__tag_build(ks, t, fields, ks->nfields, text,
                                        sizeof(text), &len) == UC_OK &&
                          len == tlen && memcmp(text, tag, tlen) == 0;
            }
            if (carries) {
                /* The hottest entry carrying the tag only (the index keeps
                 * the first in the list's order): a tag spans pages of
                 * which one is read most, and loading every page again on
                 * every write cost more loads than the reads it saved
                 * (docs/library.md). */
                found = 1;
                refill_entry(c, ks, key, klen, fields);
            }
        }
        if (!found) {
            UC__COUNT2(c, ks, refill_skipped_cold);
        }
    }
}

/* Runs the queued refills (the warm thread). */
static void serve_refills(uc_cache_t *c)
{
    uc__warm_t *w = c->warm;
    refill_job_t job;

    for (;;) {
        pthread_mutex_lock(&w->mu);
        if (w->jn == 0 || w->stop) {
            pthread_mutex_unlock(&w->mu);
            return;
        }
        job = w->jobs[w->jhead];
        w->jhead = (w->jhead + 1) % REFILL_QUEUE_MAX;
        w->jn--;
        w->refilling = 1;
        pthread_mutex_unlock(&w->mu);
        if (job.ks != NULL) {
            refill_key(c, job.ks, job.target);
        } else {
            refill_tag(c, job.target + 1);
        }
        pthread_mutex_lock(&w->mu);
        w->refilling = 0;
        w->seq_done = job.seq;
        pthread_cond_broadcast(&w->cv); /* the writers waiting for it */
        pthread_mutex_unlock(&w->mu);
    }
}

static int warm_one(uc_cache_t *c, uc_keyspace_t *ks, const uc_hot_entry_t *e,
                    tally_t *t)
{
    const char *fields[UC_KEYSPACE_FIELDS_MAX];
    char buf[UC_HOT_KEY_MAX + UC_KEYSPACE_FIELDS_MAX + 1];
    size_t klen = strlen(e->key);
    uc_load_opts_t opts = UC_LOAD_OPTS_INIT;
    uc_load_result_t r;
    wctx_t x = {c, ks, 0, 0, 1};
    int rc;

    if (uc__keyspace_parse(ks, e->key, klen, buf, sizeof(buf), fields) !=
        UC_OK) {
        t->skipped++;
        UC__COUNT2(c, ks, warm_skipped);
        return GO_ON;
    }
    if (atomic_load(&c->be->distrust) != 0) {
        return HALT; /* the restore that follows asks for a new warm */
    }
    if (pending_covers(c, ks, e->key, klen, fields)) {
        t->skipped++;
        UC__COUNT2(c, ks, warm_skipped);
        return GO_ON;
    }
    if (!token_wait(c)) {
        return HALT;
    }
    opts.loader = counted_loader;
    opts.loader_arg = &x;
    opts.flags = UC_LOAD_SHARED;
    memset(&r, 0, sizeof(r));
    rc = uc_keyspace_get_or_load(ks, fields, ks->nfields, &opts, &r);
    if (rc == UC_OK) {
        uc_shared_release(r.data);
    }
    if (x.loads > 0) {
        t->loads++;
        UC__COUNT2(c, ks, warm_loads);
        t->failing = x.failed > 0 ? t->failing + 1 : 0;
        if (t->failing >= FAILURES_MAX) {
            return GIVE_UP;
        }
    } else if (rc == UC_OK || rc == UC_MISS) {
        t->hits++;
        UC__COUNT2(c, ks, warm_hits);
    } else {
        t->skipped++;
        UC__COUNT2(c, ks, warm_skipped);
    }
    if (rc == UC_OK && r.source == UC_FROM_FALLBACK) {
        /* The cache failed: what the next loads read would not be kept. */
        return GIVE_UP;
    }
    return GO_ON;
}

/* The list whose next entry is read most, or NULL when all are done. */
static list_t *hottest(list_t *lists, size_t n)
{
    list_t *best = NULL;

    for (size_t i = 0; i < n; i++) {
        list_t *l = &lists[i];
        /* by the lists' own rank: the reads an entry surely had */
        if (l->at < l->n &&
            (best == NULL ||
             l->e[l->at].reads - l->e[l->at].error >
                 best->e[best->at].reads - best->e[best->at].error)) {
            best = l;
        }
    }
    return best;
}

static void run(uc_cache_t *c)
{
    size_t nks = atomic_load(&c->nks), top = (size_t)c->env.cfg.warm_top;
    list_t lists[UC__KEYSPACES_MAX];
    size_t nl = 0;
    tally_t t = {0, 0, 0, 0};
    uint64_t t0 = uc__now_us(&c->env);
    int halt = 0, gave_up = 0;
    list_t *l;

    for (size_t i = 0; i < nks; i++) {
        uc_keyspace_t *ks = c->ks[i];
        size_t n;
        if (ks->hot == NULL) {
            continue;
        }
        if (ks->loader == NULL) {
            n = uc__hot_top(ks->hot, NULL, 0);
            n = n < top ? n : top;
            t.skipped += n;
            for (size_t k = 0; k < n; k++) {
                UC__COUNT2(c, ks, warm_skipped);
            }
            continue;
        }
        /* As many as it holds now (a few more may come meanwhile). */
        n = uc__hot_top(ks->hot, NULL, 0);
        n = n < top ? n : top;
        if (n == 0) {
            continue;
        }
        uc_hot_entry_t *e = malloc(n * sizeof(*e));
        if (e == NULL) {
            uc__log(&c->env, UC_LOG_WARN,
                    "warm: keyspace '%s': out of memory; not warmed", ks->name);
            continue;
        }
        size_t held = uc__hot_top(ks->hot, e, n);
        lists[nl].ks = ks;
        lists[nl].e = e;
        lists[nl].n = held < n ? held : n;
        lists[nl].at = 0;
        nl++;
    }
    while (!halt && (l = hottest(lists, nl)) != NULL) {
        serve_refills(c);
        if (halted(c->warm)) {
            halt = 1;
            break;
        }
        int go = warm_one(c, l->ks, &l->e[l->at], &t);
        l->at++;
        halt = go != GO_ON;
        gave_up = go == GIVE_UP;
    }
    for (size_t i = 0; i < nl; i++) {
        if (gave_up) {
            /* What the failing cache or database kept from being warmed. */
            for (size_t k = lists[i].at; k < lists[i].n; k++) {
                t.skipped++;
                UC__COUNT2(c, lists[i].ks, warm_skipped);
            }
        }
        free(lists[i].e);
    }
    if (t.loads + t.hits + t.skipped > 0) {
        uc__log(&c->env, gave_up ? UC_LOG_WARN : UC_LOG_INFO,
                "warm: %llu entries loaded, %llu cached already, %llu "
                "skipped in %llu ms%s",
                (unsigned long long)t.loads, (unsigned long long)t.hits,
                (unsigned long long)t.skipped,
                (unsigned long long)((uc__now_us(&c->env) - t0) / 1000u),
                !gave_up                    ? (halt ? " (stopped)" : "")
                : t.failing >= FAILURES_MAX ? " (stopped: the loader failed "
                                              "3 times in a row)"
                                            : " (stopped: the cache is "
                                              "unavailable)");
    }
}

static void *warm_main(void *arg)
{
    uc_cache_t *c = arg;
    uc__warm_t *w = c->warm;

    /* Reading the hottest entries must not make them hotter. */
    uc__hot_mute(1);
    tl_warm_thread = 1;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        if (w->jn > 0) {
            pthread_mutex_unlock(&w->mu);
            serve_refills(c);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        if (!w->queued) {
            struct timespec ts = uc__deadline(CLOCK_MONOTONIC, IDLE_WAIT_MS);
            (void)pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            continue;
        }
        w->queued = 0;
        w->running = 1;
        pthread_mutex_unlock(&w->mu);
        run(c);
        pthread_mutex_lock(&w->mu);
        w->running = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Under w->mu. Signals are blocked in the thread, as in the worker's. */
static int start_locked(uc_cache_t *c)
{
    uc__warm_t *w = c->warm;
    sigset_t all, old;
    int rc;

    if (w->started) {
        return UC_OK;
    }
    if (w->stop) {
        return UC_EUNAVAILABLE;
    }
    w->tokens = burst(c);
    w->refill_us = uc__now_us(&c->env);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, warm_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        return UC_ENOMEM;
    }
    w->started = 1;
    return UC_OK;
}

/* Declared in cache_int.h, where the contract is. */
void uc__refill_after(uc_cache_t *c, uc_keyspace_t *ks, const char *target)
{
    uc__warm_t *w = c->warm;
    size_t tlen = strlen(target);
    int tag = target[0] == UC__TAG_TARGET;

    if (w == NULL || c->env.cfg.observer || c->env.cfg.refill_top < 0 ||
        tlen > UC_KEY_MAX) {
        return;
    }
    if (!tag) {
        /* A pattern names no entry to load; a cold entry is left to the
         * next read, which costs the database what a refill would. */
        if (ks == NULL || ks->loader == NULL || ks->hot == NULL ||
            ks->refill_top <= 0 || memchr(target, '*', tlen) != NULL) {
            return;
        }
        if (!uc__hot_is_top(ks->hot, target, tlen, (size_t)ks->refill_top)) {
            UC__COUNT2(c, ks, refill_skipped_cold);
            return;
        }
    }
    pthread_mutex_lock(&w->mu);
    if (w->jobs == NULL && !w->stop) {
        w->jobs = malloc(REFILL_QUEUE_MAX * sizeof(*w->jobs));
    }
    if (w->jobs == NULL || w->stop || start_locked(c) != UC_OK ||
        w->jn == REFILL_QUEUE_MAX) {
        pthread_mutex_unlock(&w->mu);
        UC__COUNT2(c, tag ? NULL : ks, refill_skipped_overflow);
        return;
    }
    refill_job_t *j = &w->jobs[(w->jhead + w->jn) % REFILL_QUEUE_MAX];
    j->ks = tag ? NULL : ks;
    j->seq = ++w->seq_last;
    memcpy(j->target, target, tlen + 1);
    w->jn++;
    pthread_cond_broadcast(&w->cv);
    /* The write answers once its refill is stored (or past the bound, when
     * it goes on in the background): a read that starts after the write's
     * answer then finds the new value instead of loading it itself. */
    if (c->env.cfg.refill_wait_ms > 0 && !tl_warm_thread) {
        uint64_t seq = j->seq;
        struct timespec ts =
            uc__deadline(CLOCK_MONOTONIC, (uint64_t)c->env.cfg.refill_wait_ms);

        while (w->seq_done < seq && !w->stop) {
            if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) {
                if (w->seq_done < seq) {
                    UC__COUNT2(c, tag ? NULL : ks, refill_wait_timeouts);
                }
                break;
            }
        }
    }
    pthread_mutex_unlock(&w->mu);
}

/* Nonzero when some keyspace has its own loader and a record; with
 * `entries`, one that holds entries too. */
static int has_work(uc_cache_t *c, int entries)
{
    size_t nks = atomic_load(&c->nks);

    if (c->env.cfg.warm_top < 0) {
        return 0;
    }
    for (size_t i = 0; i < nks; i++) {
        uc_keyspace_t *ks = c->ks[i];
        if (ks->loader != NULL && ks->hot != NULL &&
            (!entries || uc__hot_top(ks->hot, NULL, 0) > 0)) {
            return 1;
        }
    }
    return 0;
}

/* ---- what the rest of the core calls --------------------------------------
 */

int uc__warm_create(uc_cache_t *c)
{
    uc__warm_t *w = calloc(1, sizeof(*w));
    pthread_condattr_t ca;

    if (w == NULL) {
        return UC_ENOMEM;
    }
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w);
        return UC_ENOMEM;
    }
    if (pthread_condattr_init(&ca) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return UC_ENOMEM;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&w->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return UC_ENOMEM;
    }
    pthread_condattr_destroy(&ca);
    c->warm = w;
    return UC_OK;
}

void uc__warm_stop(uc_cache_t *c)
{
    uc__warm_t *w = c->warm;
    int join;

    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    join = w->started;
    w->started = 0;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (join) {
        pthread_join(w->thread, NULL);
    }
}

void uc__warm_destroy(uc_cache_t *c)
{
    uc__warm_t *w = c->warm;

    if (w == NULL) {
        return;
    }
    uc__warm_stop(c);
    for (size_t i = 0; i < UC__KEYSPACES_MAX; i++) {
        free(w->rks[i].snap);
        free(w->rks[i].tag_hash);
        free(w->rks[i].tag_at);
    }
    free(w->jobs);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    c->warm = NULL;
}

int uc__warm_keyspace(uc_cache_t *c, uc_keyspace_t *ks)
{
    const uc_config_t *cfg = &c->env.cfg;

    ks->hot = NULL;
    if (cfg->hot_capacity < 0) {
        return UC_OK;
    }
    int rc = uc__hot_create((size_t)cfg->hot_capacity,
                            (unsigned)cfg->hot_sample, &ks->hot);
    if (rc == UC_OK && cfg->hot_sample_above > 0) {
        uc__hot_adapt(ks->hot, (uint64_t)cfg->hot_sample_above);
    }
    return rc;
}

void uc__warm_request(uc_cache_t *c)
{
    uc__warm_t *w = c->warm;

    if (w == NULL || c->env.cfg.observer || !has_work(c, 1)) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    if (!w->stop && start_locked(c) == UC_OK) {
        /* A warm in progress starts again from the hottest entry: what it
         * warmed so far went with the dataset. */
        w->queued = 1;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

/* ---- the shared list: warming at start ------------------------------------
 */

/* Where a keyspace's list lives: <prefix>uc:hot:<keyspace>. */
static size_t hot_list_key(const uc_cache_t *c, const uc_keyspace_t *ks,
                           char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%suc:hot:%s", c->env.cfg.key_prefix, ks->name);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Whether ks takes part: warming on, a loader, a record, a shared store. */
static int shares_list(const uc_cache_t *c, const uc_keyspace_t *ks)
{
    return !c->local && !c->env.cfg.observer && c->env.cfg.warm_top > 0 &&
           ks->loader != NULL && ks->hot != NULL;
}

void uc__warm_publish(uc_cache_t *c)
{
    size_t nks = atomic_load(&c->nks), top = (size_t)c->env.cfg.warm_top;
    uc_hot_entry_t *e = NULL;
    char *text = NULL;

    if (top == 0 || c->env.cfg.warm_top < 0) {
        return;
    }
    e = malloc(top * sizeof(*e));
    text = malloc(HOT_LIST_MAX);
    for (size_t i = 0; i < nks && e != NULL && text != NULL; i++) {
        uc_keyspace_t *ks = c->ks[i];
        char key[UC__FULLKEY_MAX];
        size_t klen, len = 0;

        if (!shares_list(c, ks) ||
            (klen = hot_list_key(c, ks, key, sizeof(key))) == 0) {
            continue;
        }
        size_t n = uc__hot_top(ks->hot, e, top);
        n = n < top ? n : top;
        if (n == 0) {
            continue;
        }
        for (size_t j = 0; j < n; j++) {
            int w = snprintf(text + len, HOT_LIST_MAX - len, "%llu %s\n",
                             (unsigned long long)(e[j].reads - e[j].error),
                             e[j].key);
            if (w < 0 || (size_t)w >= HOT_LIST_MAX - len) {
                break; /* the list is cut: the hottest are in it */
            }
            len += (size_t)w;
        }
        (void)c->be->ops->set(c->be, key, klen, text, len, HOT_LIST_TTL_MS);
    }
    free(e);
    free(text);
}

/*
 * Reads the shared list of ks into its record: each key counted as many
 * times as its reads over the sampling rate, at most SEED_COUNT_MAX. UC_OK
 * (with *added, nothing when there is no list) or the store's error, to be
 * tried again on a later tick.
 */
static int seed_keyspace(uc_cache_t *c, uc_keyspace_t *ks, size_t *added)
{
    char key[UC__FULLKEY_MAX];
    size_t klen = hot_list_key(c, ks, key, sizeof(key)), len = 0;
    unsigned sample = uc__hot_sample(ks->hot);
    char *text = NULL;
    int rc;

    *added = 0;
    if (klen == 0) {
        return UC_OK;
    }
    rc = c->be->ops->get_max(c->be, key, klen, HOT_LIST_MAX, &text, &len);
    if (rc == UC_MISS || rc == UC_ETOOBIG || rc == UC_ECORRUPT) {
        return UC_OK; /* none, or not one of ours: nothing to seed */
    }
    if (rc != UC_OK) {
        return rc;
    }
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *sp = memchr(p, ' ', (size_t)((nl != NULL ? nl : end) - p));
        char *eol = nl != NULL ? nl : end;

        if (sp != NULL && sp + 1 < eol) {
            unsigned long long reads = strtoull(p, NULL, 10);
            size_t n = (size_t)(eol - sp - 1);
            unsigned long long times = reads / (sample > 0 ? sample : 1);

            times = times < 1                ? 1
                    : times > SEED_COUNT_MAX ? SEED_COUNT_MAX
                                             : times;
            for (unsigned long long t = 0; t < times; t++) {
                uc__hot_add(ks->hot, sp + 1, n);
            }
            (*added)++;
        }
        p = eol + 1;
    }
    free(text);
    return UC_OK;
}

void uc__warm_tick(uc_cache_t *c, uint64_t now_us)
{
    uc__warm_t *w = c->warm;
    size_t nks = atomic_load(&c->nks);
    size_t seeded = 0;

    if (w == NULL) {
        return;
    }
    /* At start: what the other instances read most, warmed here too. A
     * keyspace's list is read once, tried again on later ticks while the
     * store fails (SEED_TRIES at most). */
    for (size_t i = 0; i < nks; i++) {
        uc_keyspace_t *ks = c->ks[i];
        size_t added = 0;

        if (w->seeded[ks->cls] || !shares_list(c, ks) ||
            w->seed_tries[ks->cls] >= SEED_TRIES) {
            continue;
        }
        w->seed_tries[ks->cls]++;
        if (seed_keyspace(c, ks, &added) == UC_OK) {
            w->seeded[ks->cls] = 1;
            seeded += added;
        }
    }
    if (seeded > 0) {
        uc__log(&c->env, UC_LOG_INFO,
                "warm: %zu entries read most by other instances, warming "
                "them here",
                seeded);
        uc__warm_request(c);
    }
    for (size_t i = 0; i < nks; i++) {
        (void)uc__hot_tune(c->ks[i]->hot, now_us);
    }
    if (w->next_publish_us == 0) {
        w->next_publish_us = now_us + HOT_PUBLISH_US;
    } else if (now_us >= w->next_publish_us) {
        w->next_publish_us = now_us + HOT_PUBLISH_US;
        uc__warm_publish(c);
    }
    if (w->next_halve_us == 0) {
        w->next_halve_us = now_us + HALVE_EVERY_US;
        return;
    }
    if (now_us < w->next_halve_us) {
        return;
    }
    w->next_halve_us = now_us + HALVE_EVERY_US;
    for (size_t i = 0; i < nks; i++) {
        uc__hot_halve(c->ks[i]->hot);
    }
}

int uc__warm_busy(uc_cache_t *c)
{
    uc__warm_t *w = c->warm;
    int busy;

    if (w == NULL) {
        return 0;
    }
    pthread_mutex_lock(&w->mu);
    busy = w->queued || w->running || w->jn > 0 || w->refilling;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

/* ---- the public face ------------------------------------------------------
 */

int uc_cache_warm(uc_cache_t *cache)
{
    uc__warm_t *w;
    int rc;

    if (cache == NULL) {
        return UC_EINVAL;
    }
    w = cache->warm;
    if (w == NULL || !has_work(cache, 0)) {
        return UC_ENOTSUP;
    }
    pthread_mutex_lock(&w->mu);
    if (w->stop || w->queued || w->running) {
        pthread_mutex_unlock(&w->mu);
        return UC_EUNAVAILABLE;
    }
    rc = start_locked(cache);
    if (rc == UC_OK) {
        w->queued = 1;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

size_t uc_keyspace_hot(const uc_keyspace_t *ks, uc_hot_entry_t *out, size_t cap)
{
    if (ks == NULL) {
        return 0;
    }
    return uc__hot_top(ks->hot, out, cap);
}

size_t uc_keyspace_hot_bytes(const uc_keyspace_t *ks)
{
    return ks != NULL ? uc__hot_bytes(ks->hot) : 0;
}
