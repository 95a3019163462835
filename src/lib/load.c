/* SPDX-License-Identifier: MIT */
/*
 * get-or-load as explicit steps (the contract is in keyspace.h), and the
 * keyspace get and set that share its envelope handling:
 *
 *   judge   pending invalidation or untrusted dataset: bypass the cache
 *   near    this process's copy, while its invalidation channel is proven
 *           alive; a ticket taken before anything else is read closes the
 *           race with an invalidation that arrives meanwhile
 *   flight  concurrent callers of one entry in this process share one load
 *   read    one bounded read of the entry's key (never more than the cap)
 *   open    envelope check: a lease is a fill in progress (wait for it,
 *           bounded); a corrupt value, another key's value, an oversized
 *           one or one the validator rejects is deleted (poison never blocks
 *           the next fill); a value past its TTL is kept for serve-stale
 *   lease   on a miss, a random token set in the entry's key only if absent
 *           (over an expired value: the token with that value inside, so
 *           that waiters can still answer with it)
 *   load    the loader, without any lock
 *   store   compare-and-set on the token: fails if an invalidation deleted
 *           the lease meanwhile, so an old read is never stored
 *
 * Tags: a fill reads the versions of its entry's tags before the loader
 * reads the database (creating a missing one with SET NX, so that a
 * concurrent invalidation's write wins) and records them in the envelope;
 * a read uses a value only while each recorded version is the current
 * one. A write that commits before the loader reads the database is seen
 * by it; one that commits after has its tag bump after the fill's read of
 * the version, so the value records an outdated one and reads as a miss.
 * A near copy is judged by the near copies of the versions (which follow
 * the same ticket rule as entries, see track.h), a value read from the
 * store by the store's versions, read after it, each as an entry is
 * (bounded, dataset checked). A value whose versions are outdated is not
 * deleted: the fill takes its lease over the value's exact bytes, as over
 * an expired one, and replaces it.
 *
 * A hit may refresh its entry early (XFetch): with probability
 * exp(-remaining / (delta * beta)), delta being the load time recorded in
 * the envelope, the reader reloads it and replaces the value only while the
 * key still holds exactly the value it read (compare-and-set), so a refresh
 * can no more store over an invalidation than a fill can.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"

/* The lease of a load that will not store is shortened to this, so that
 * the next reader does not take it for a fill in progress. */
#define LEASE_RELEASE_MS 1
/* Waiting for another instance's fill: re-read after this long at first,
 * doubling up to the cap, unless the key's invalidation wakes us first. */
#define LEASE_POLL_FIRST_MS 2
#define LEASE_POLL_MAX_MS 50
/* A wait for another instance's fill with no stale value to answer with
 * lasts at most this long, or this many times the keyspace's average load
 * time here when that is longer (and never past the lease time): a lease
 * whose holder died, or whose store could not land (its primary hung, then
 * failed over), is taken over then instead of stalling every reader of the
 * key until it expires. */
#define LEASE_WAIT_MIN_MS 1000
#define LEASE_WAIT_LOADS 4
/* Reads of one call that may find the key changed under them before it
 * gives up on the cache and just loads. */
#define READS_MAX 4
/* Beside an entry's key (after the prefix): the claim of its early
 * refresh, held for the lease time by the instance that refreshes. */
#define REFRESH_TAG "uc:rf:"

typedef struct {
    uc_keyspace_t *ks;
    char key[UC_KEY_MAX + 1];
    size_t klen;
    char fk[UC__FULLKEY_MAX];
    size_t fklen;
    /* The full keys of its tags' versions (ks->ntags of them). */
    char tk[UC__TAGS_MAX][UC__FULLKEY_MAX];
    size_t tklen[UC__TAGS_MAX];
} entry_t;

static int entry_of(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, entry_t *e)
{
    int rc = uc__keyspace_build(ks, fields, nfields, 0, e->key, sizeof(e->key),
                                &e->klen);

    if (rc != UC_OK) {
        return UC_EINVAL;
    }
    e->ks = ks;
    e->fklen = uc__full_key(ks->cache, e->key, e->klen, e->fk);
    for (size_t i = 0; i < ks->ntags && rc == UC_OK; i++) {
        rc = uc__entry_tag_key(ks, i, fields, nfields, e->tk[i], &e->tklen[i]);
    }
    return e->fklen > 0 && rc == UC_OK ? UC_OK : UC_EINVAL;
}

/* Whether an invalidation of the entry, or of one of its tags, is pending
 * (the tags' texts follow the prefix and the tag space in their keys). */
static int pending_covers(uc_cache_t *c, const entry_t *e)
{
    const char *tags[UC__TAGS_MAX];
    size_t lens[UC__TAGS_MAX];
    size_t at = c->plen + UC__TAG_SPACE_LEN;

    for (size_t i = 0; i < e->ks->ntags; i++) {
        tags[i] = e->tk[i] + at;
        lens[i] = e->tklen[i] - at;
    }
    return uc__pending_covers(c, e->ks, e->key, e->klen, tags, lens,
                              e->ks->ntags);
}

/* ---- small helpers --------------------------------------------------------
 */

/* A per-thread xorshift: early refresh and jitter need a coin per call,
 * and a shared generator would be one more contended cache line. */
static double coin(void)
{
    static _Thread_local uint64_t s;

    if (s == 0) {
        s = (uint64_t)(uintptr_t)&s ^ uc__wall_ms() ^ 0x9e3779b97f4a7c15u;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    /* (0, 1]: ln() of it is finite. */
    return ((double)(s >> 11) + 1.0) / 9007199254740992.0;
}

/* The TTL of one fill, jittered by +- jitter_pct %. */
static uint64_t fill_ttl_ms(const uc_keyspace_t *ks)
{
    uint64_t ttl = (uint64_t)ks->ttl_s * 1000u;
    double j = (double)ks->jitter_pct / 100.0;

    if (ks->jitter_pct == 0 || ttl == 0) {
        return ttl;
    }
    ttl = (uint64_t)((double)ttl * (1.0 - j + 2.0 * j * coin()));
    return ttl > 0 ? ttl : 1;
}

/* How long the store keeps an entry whose logical TTL is ttl. */
static uint64_t hard_ttl_ms(const uc_keyspace_t *ks, uint64_t ttl)
{
    return ttl + (uint64_t)ks->stale_s * 1000u;
}

/*
 * XFetch: refresh when now - delta * beta * ln(u) >= expiry. The test is
 * skipped without the logarithm while the entry is far from its expiry
 * (beyond 40 deltas the probability is below 1e-17).
 */
static int refresh_due(const uc_keyspace_t *ks, const uc__meta_t *m,
                       uint64_t now_ms)
{
    double delta_ms, left;

    if (ks->beta <= 0.0 || m->load_us == 0 || now_ms >= m->expires_ms) {
        return 0;
    }
    delta_ms = (double)m->load_us / 1000.0 * ks->beta;
    left = (double)(m->expires_ms - now_ms);
    if (left > 40.0 * delta_ms) {
        return 0;
    }
    return -delta_ms * log(coin()) >= left;
}

static uc__near_meta_t near_meta(const uc_keyspace_t *ks, const uc__meta_t *m)
{
    uc__near_meta_t nm;

    nm.produced_ms = m->produced_ms;
    nm.expires_ms = m->expires_ms;
    nm.stale_ms = m->expires_ms + (uint64_t)ks->stale_s * 1000u;
    nm.load_us = m->load_us;
    nm.flags = m->flags;
    nm.hash = m->value_hash;
    nm.tags = m->ntags > 0 ? uc__tags_digest(m->tagv, m->ntags) : 0;
    return nm;
}

static uc__meta_t meta_of(const uc__near_meta_t *nm)
{
    uc__meta_t m;

    m.produced_ms = nm->produced_ms;
    m.load_us = nm->load_us;
    m.expires_ms = nm->expires_ms;
    m.value_hash = nm->hash;
    m.flags = nm->flags;
    m.ntags = 0; /* the near copy keeps only their digest */
    return m;
}

/* The near cache may be used for this keyspace: it exists, the keyspace
 * has a budget, and the channel is proven alive (checked after the ticket
 * was taken, see near_admit()). */
static int near_on(const uc_cache_t *c, const uc_keyspace_t *ks)
{
    return c->near != NULL && ks->near_budget > 0;
}

static int channel_healthy(const uc_cache_t *c)
{
    return c->track != NULL && uc__track_state(c->track) == UC__TRACK_HEALTHY &&
           uc__track_fresh(c->track);
}

/* ---- tag versions ----------------------------------------------------------
 */

static int distrusted(const uc_cache_t *c, int rc);
static int trusted(uc_cache_t *c);

/* The current versions of an entry's tags; bit i of `missing` set when tag
 * i has none (which reads as changed). */
typedef struct {
    uint64_t v[UC__TAGS_MAX];
    unsigned missing;
} tagnow_t;

/* This process's copy of tag i's version: 1 with *v, 0 when there is
 * none. */
static int near_tag(uc_cache_t *c, const entry_t *e, size_t i, uint64_t *v)
{
    uc__near_entry_t *ne =
        uc__near_get(c->near, e->ks->cls, e->tk[i], e->tklen[i], uc__wall_ms());
    int ok = 0;

    if (ne != NULL) {
        if (uc__near_len(ne) == sizeof(*v)) {
            memcpy(v, uc__near_value(ne), sizeof(*v));
            ok = 1;
        }
        uc__near_release(ne);
    }
    return ok;
}

/*
 * Keeps a version read from the store as this process's copy, in the
 * keyspace's class, under the same rule as a value: the ticket was taken
 * before the read, so a write of the tag since then refuses it.
 */
static void near_tag_keep(uc_cache_t *c, const entry_t *e, size_t i,
                          uint64_t ticket, uint64_t v)
{
    uint64_t now = uc__wall_ms(), ttl = uc__tag_ttl_ms(c);
    uc__near_meta_t nm;

    memset(&nm, 0, sizeof(nm));
    nm.produced_ms = now;
    nm.expires_ms = now + ttl;
    nm.stale_ms = now + ttl;
    (void)uc__near_put(c->near, e->ks->cls, e->tk[i], e->tklen[i], ticket,
                       (const char *)&v, sizeof(v), &nm, now, NULL);
}

/* A tag's stored version is 16 hex digits; anything much longer is not
 * one (and reads as changed). */
#define TAG_VALUE_MAX 64

/* Where tags_now() looks for versions. */
typedef enum {
    TAGS_NEAR_FIRST, /* this process's copies, then the store */
    TAGS_NEAR_ONLY,  /* this process's copies alone */
    TAGS_STORE,      /* the store alone */
} tags_from_t;

/*
 * The current versions of e's tags, from where `from` says; with use_near
 * (the near cache is on and its channel proven), copies are read from the
 * near cache and what the store answered is kept there. UC_MISS when
 * TAGS_NEAR_ONLY finds a copy missing. Returns UC_OK with *now, or the
 * store's error.
 *
 * A copy may lag behind the store by the invalidation lag, so copies judge
 * near copies only: a value read from the store is judged by the store's
 * versions, and the store never serves a value older than a write that
 * was answered (a fill may record a copy: an outdated one only costs a
 * miss).
 *
 * Each version is read as an entry is, bounded and guarded by dataset
 * trust (GETRANGE on a connection whose dataset was checked): a restarted
 * or promoted server may hold a version older than the tag's last
 * invalidation, which a raw multi-get would take for the current one. The
 * versions not found near are read in one guarded multi-get (mget_max: one
 * round trip per server holding them).
 */
static int tags_now(uc_cache_t *c, const entry_t *e, uint64_t ticket,
                    int use_near, tags_from_t from, tagnow_t *now)
{
    const char *keys[UC__TAGS_MAX];
    size_t klens[UC__TAGS_MAX];
    size_t which[UC__TAGS_MAX];
    uc_value_t got[UC__TAGS_MAX];
    size_t n = 0;
    int rc = UC_OK;

    now->missing = 0;
    for (size_t i = 0; i < e->ks->ntags; i++) {
        if (use_near && from != TAGS_STORE && near_tag(c, e, i, &now->v[i])) {
            continue;
        }
        if (from == TAGS_NEAR_ONLY) {
            return UC_MISS;
        }
        keys[n] = e->tk[i];
        klens[n] = e->tklen[i];
        which[n++] = i;
    }
    if (n == 0) {
        return UC_OK;
    }
    memset(got, 0, sizeof(got));
    if (c->be->ops->mget_max != NULL) {
        rc = c->be->ops->mget_max(c->be, n, keys, klens, TAG_VALUE_MAX, got);
    } else {
        for (size_t j = 0; j < n && rc == UC_OK; j++) {
            got[j].status =
                c->be->ops->get_max(c->be, keys[j], klens[j], TAG_VALUE_MAX,
                                    &got[j].data, &got[j].len);
            if (got[j].status != UC_OK && got[j].status != UC_MISS &&
                got[j].status != UC_ETOOBIG && got[j].status != UC_ECORRUPT) {
                rc = got[j].status;
            }
        }
    }
    for (size_t j = 0; j < n; j++) {
        size_t i = which[j];

        if (rc == UC_OK && got[j].status == UC_OK) {
            now->v[i] = uc__tag_version_parse(got[j].data, got[j].len);
            if (use_near) {
                near_tag_keep(c, e, i, ticket, now->v[i]);
            }
        } else if (rc == UC_OK) {
            /* None, or not one: changed. */
            now->missing |= 1u << i;
        }
        free(got[j].data);
    }
    return rc;
}

/* 1 when every tag has a version and their digest is `digest`. */
static int tags_match(const entry_t *e, const tagnow_t *now, uint64_t digest)
{
    return now->missing == 0 && uc__tags_digest(now->v, e->ks->ntags) == digest;
}

/*
 * The versions a fill or a set records, read before the value is made:
 * the current ones, and for a tag without one a new random version written
 * only if there is still none (SET NX), else the one that won, read back.
 * UC_OK with m->ntags and m->tagv set, or the store's error.
 */
static int tags_for_fill(uc_cache_t *c, const entry_t *e, uint64_t ticket,
                         int use_near, uc__meta_t *m)
{
    tagnow_t now;
    int rc = tags_now(c, e, ticket, use_near, TAGS_NEAR_FIRST, &now);

    if (distrusted(c, rc) && trusted(c)) {
        /* A changed dataset found meanwhile, now dropped and adopted. */
        rc = tags_now(c, e, ticket, use_near, TAGS_NEAR_FIRST, &now);
    }
    if (rc != UC_OK) {
        return rc;
    }
    for (size_t i = 0; i < e->ks->ntags; i++) {
        int tries = 0;
        while ((now.missing & (1u << i)) != 0) {
            uint64_t v = uc__tag_version_new(c);
            char ver[17], *got = NULL;
            size_t glen = 0;

            uc__tag_version_format(v, ver);
            if (++tries > 3) {
                /* Something that is no version sits there (empty, too
                 * long, another type): replaced by one, which is an
                 * invalidation of the tag, always safe. */
                rc = c->be->ops->set(c->be, e->tk[i], e->tklen[i], ver, 16,
                                     uc__tag_ttl_ms(c));
                if (rc != UC_OK) {
                    return rc;
                }
                now.v[i] = v;
                now.missing &= ~(1u << i);
                break;
            }
            rc = c->be->ops->add(c->be, e->tk[i], e->tklen[i], ver, 16,
                                 uc__tag_ttl_ms(c));
            if (rc == UC_OK) {
                now.v[i] = v;
                now.missing &= ~(1u << i);
                break;
            }
            if (distrusted(c, rc) && trusted(c)) {
                continue; /* the node holding it, just adopted */
            }
            if (rc != UC_ESTALE) {
                return rc;
            }
            /* Written meanwhile (an invalidation, another fill): take
             * that one. Gone again: try once more. */
            rc = c->be->ops->get_max(c->be, e->tk[i], e->tklen[i],
                                     TAG_VALUE_MAX, &got, &glen);
            if (rc == UC_OK) {
                now.v[i] = uc__tag_version_parse(got, glen);
                now.missing &= ~(1u << i);
                free(got);
            } else if (rc != UC_MISS && rc != UC_ETOOBIG && rc != UC_ECORRUPT) {
                return rc;
            }
        }
    }
    m->ntags = (uint32_t)e->ks->ntags;
    memcpy(m->tagv, now.v, e->ks->ntags * sizeof(now.v[0]));
    return UC_OK;
}

/*
 * Whether a value at hand (a near copy, a flight's result) was built from
 * the current versions of its tags, as tags_now() finds them from `from`:
 * 1 yes (or nothing to check: no tags, or none recorded, which only a fill
 * that could not read them makes); 0 no; negative when it cannot tell (the
 * store's error; with TAGS_NEAR_ONLY, a copy not here).
 */
static int entry_current(uc_cache_t *c, const entry_t *e, uint64_t ticket,
                         int use_near, tags_from_t from,
                         const uc__near_entry_t *ne)
{
    uint64_t digest = uc__near_meta(ne)->tags;
    tagnow_t now;
    int rc;

    if (e->ks->ntags == 0 || digest == 0) {
        return 1;
    }
    rc = tags_now(c, e, ticket, use_near, from, &now);
    if (rc != UC_OK) {
        return rc < 0 ? rc : UC_EUNAVAILABLE;
    }
    return tags_match(e, &now, digest);
}

/* ---- results --------------------------------------------------------------
 */

/*
 * Hands a value to the caller: the entry itself (a reference the caller
 * releases with uc_shared_release()) when it asked for shared results,
 * else a malloc()ed copy. Takes over the reference in `ne`.
 */
static int give_entry(uc__near_entry_t *ne, uint32_t flags, uc_source_t source,
                      uc_tier_t tier, uc_load_result_t *out)
{
    const uc__near_meta_t *nm = uc__near_meta(ne);
    size_t len = uc__near_len(ne);

    out->len = len;
    out->source = source;
    out->tier = tier;
    out->produced_ms = nm->produced_ms;
    out->hash = nm->hash;
    if ((flags & UC_LOAD_SHARED) != 0) {
        out->data = (char *)uc__near_value(ne);
        return UC_OK;
    }
    out->data = malloc(len + 1);
    if (out->data == NULL) {
        uc__near_release(ne);
        return UC_ENOMEM;
    }
    memcpy(out->data, uc__near_value(ne), len + 1);
    uc__near_release(ne);
    return UC_OK;
}

/* A standalone shared entry holding (val, len) with meta m. */
static uc__near_entry_t *make_entry(const uc_keyspace_t *ks, const entry_t *e,
                                    const char *val, size_t len,
                                    const uc__meta_t *m)
{
    uc__near_meta_t nm = near_meta(ks, m);
    return uc__near_entry_new(e->fk, e->fklen, val, len, &nm);
}

/*
 * Keeps a value read from the store or loaded in the near cache when the
 * ticket is still good and the channel was proven after it was taken, and
 * returns an entry for the caller either way (NULL on out of memory).
 */
static uc__near_entry_t *near_keep(uc_cache_t *c, const entry_t *e,
                                   uint64_t ticket, int use_near,
                                   const char *val, size_t len,
                                   const uc__meta_t *m)
{
    uc_keyspace_t *ks = e->ks;
    uc__near_meta_t nm = near_meta(ks, m);
    uc__near_entry_t *ne = NULL;

    if (use_near) {
        if (uc__near_put(c->near, ks->cls, e->fk, e->fklen, ticket, val, len,
                         &nm, uc__wall_ms(), &ne) == 0) {
            UC__COUNT2(c, ks, near_races);
        }
        if (ne != NULL) {
            return ne;
        }
    }
    return uc__near_entry_new(e->fk, e->fklen, val, len, &nm);
}

/* ---- the shared store ------------------------------------------------------
 */

/* Deletes a value that is not what it claims; counts and logs it. */
static void drop_corrupt(uc_cache_t *c, const entry_t *e, const char *why)
{
    UC__COUNT2(c, e->ks, corrupt);
    (void)c->be->ops->del(c->be, e->fk, e->fklen, NULL);
    uc__log_limited(&c->env, &c->corrupt_log, UC_LOG_WARN,
                    "keyspace '%s': cached value %s; deleted", e->ks->name,
                    why);
}

typedef enum {
    F_HIT,         /* a fresh value */
    F_EXPIRED,     /* a value past its TTL, within the grace */
    F_LEASE,       /* a fill in progress */
    F_LEASE_STALE, /* a fill in progress, an expired value inside */
    F_NEGATIVE,    /* a remembered "not found" */
    F_MISS,
    F_SUPERSEDED, /* a value (or "not found") built from tag versions that
                     are no longer current: a miss whose bytes the fill's
                     lease replaces */
    F_ERROR,
} found_kind_t;

typedef struct {
    found_kind_t kind;
    int rc;  /* the store's error, for F_ERROR */
    char *v; /* payload (F_HIT, F_EXPIRED, F_LEASE_STALE, F_SUPERSEDED),
                malloc()ed */
    size_t len;
    uc__meta_t meta;
    int negative; /* F_SUPERSEDED: the value was a "not found" */
    /* F_LEASE of a bare lease (no value inside): its exact bytes, which a
     * takeover's compare-and-set names. */
    int have_token;
    char token[UC__LEASE_LEN];
} found_t;

static void found_clear(found_t *f)
{
    free(f->v);
    f->v = NULL;
    f->len = 0;
}

/*
 * Whether a value read from the store was built from the current versions
 * of its tags, by the store's versions (kept near when use_near): 1 yes, 0
 * no, or the store's error.
 */
static int tags_current(uc_cache_t *c, const entry_t *e, uint64_t ticket,
                        int use_near, const uc__meta_t *m)
{
    tagnow_t now;
    int rc;

    if (m->ntags != e->ks->ntags) {
        return 0; /* built when the keyspace declared other tags */
    }
    rc = tags_now(c, e, ticket, use_near, TAGS_STORE, &now);
    if (rc != UC_OK) {
        return rc < 0 ? rc : UC_EUNAVAILABLE;
    }
    return tags_match(e, &now, uc__tags_digest(m->tagv, m->ntags));
}

/*
 * Reads and judges the entry. Corrupt values are deleted and read as a
 * miss; an untrusted dataset reads as F_ERROR with UC_EUNAVAILABLE (the
 * caller tells it from a failure by the store's distrust flag). A value of
 * a tagged keyspace is checked against its tags' current versions (ticket
 * and use_near as for the near cache).
 */
static void read_entry(uc_cache_t *c, const entry_t *e,
                       uc_validator_fn validator, void *validator_arg,
                       uint64_t ticket, int use_near, found_t *f)
{
    uc_keyspace_t *ks = e->ks;
    uint64_t t0 = uc__now_us(&c->env);
    char *v = NULL;
    size_t vlen = 0;
    int rc = c->be->ops->get_max(
        c->be, e->fk, e->fklen,
        UC__LEASE_LEN + ks->max_value + UC__ENV_HEADER_MAX, &v, &vlen);
    uc__env_verdict_t verdict;
    uint64_t now;
    size_t raw_len = vlen;

    memset(f, 0, sizeof(*f));
    f->kind = F_MISS;
    if (rc == UC_EUNAVAILABLE && atomic_load(&c->be->distrust) != 0) {
        f->kind = F_ERROR;
        f->rc = rc;
        return;
    }
    if (rc == UC_ETOOBIG) {
        UC__COUNT2(c, ks, too_big);
        drop_corrupt(c, e, "over the keyspace's size cap");
        rc = UC_MISS;
    } else if (rc == UC_ECORRUPT) {
        /* WRONGTYPE: a key of another type where the entry should be. */
        drop_corrupt(c, e, "of the wrong type");
        rc = UC_MISS;
    } else if (rc == UC_OK) {
        now = uc__wall_ms();
        raw_len = vlen;
        verdict = uc__envelope_open(e->fk, e->fklen, v, &vlen, &f->meta);
        if (verdict == UC__ENV_LEASE && raw_len == UC__LEASE_LEN) {
            f->have_token = 1;
            memcpy(f->token, v, UC__LEASE_LEN);
        }
        if ((verdict == UC__ENV_OK || verdict == UC__ENV_LEASE_STALE) &&
            validator != NULL && !validator(validator_arg, v, vlen)) {
            verdict = UC__ENV_CORRUPT;
            drop_corrupt(c, e, "rejected by the validator");
            rc = UC_MISS;
        } else if (verdict == UC__ENV_CORRUPT) {
            drop_corrupt(c, e, "without a valid envelope for its key");
            rc = UC_MISS;
        } else if (verdict == UC__ENV_OLD) {
            /* An earlier version's envelope: not an error, nor a value we
             * can read; deleted, so that the fill replaces it. */
            (void)c->be->ops->del(c->be, e->fk, e->fklen, NULL);
            rc = UC_MISS;
        }
        if (ks->ntags > 0 &&
            (verdict == UC__ENV_OK || verdict == UC__ENV_LEASE_STALE ||
             verdict == UC__ENV_NEGATIVE)) {
            int cur = tags_current(c, e, ticket, use_near, &f->meta);
            if (cur < 0) {
                rc = cur;
            } else if (cur == 0 && verdict == UC__ENV_LEASE_STALE) {
                /* A fill in progress; the value inside is outdated. */
                verdict = UC__ENV_LEASE;
            } else if (cur == 0) {
                f->kind = F_SUPERSEDED;
                f->negative = verdict == UC__ENV_NEGATIVE;
                rc = UC_MISS;
            }
        }
        switch (rc < 0 || f->kind == F_SUPERSEDED ? UC__ENV_CORRUPT : verdict) {
        case UC__ENV_OK:
            if (now < f->meta.expires_ms) {
                f->kind = F_HIT;
            } else {
                f->kind = F_EXPIRED;
                rc = UC_MISS;
            }
            break;
        case UC__ENV_LEASE:
            f->kind = F_LEASE;
            rc = UC_MISS;
            break;
        case UC__ENV_LEASE_STALE:
            f->kind = F_LEASE_STALE;
            rc = UC_MISS;
            break;
        case UC__ENV_NEGATIVE:
            f->kind = now < f->meta.expires_ms ? F_NEGATIVE : F_MISS;
            /* A remembered "not found" is the cache answering. */
            rc = f->kind == F_NEGATIVE ? UC_OK : UC_MISS;
            break;
        case UC__ENV_CORRUPT:
        case UC__ENV_OLD:
        default:
            if (f->kind != F_SUPERSEDED) {
                f->kind = F_MISS;
            }
            break;
        }
    }
    if (rc != UC_OK && rc != UC_MISS) {
        f->kind = F_ERROR;
        f->rc = rc;
    }
    uc__count_get(c, ks, rc, t0);
    if (f->kind == F_HIT || f->kind == F_EXPIRED || f->kind == F_LEASE_STALE ||
        f->kind == F_SUPERSEDED) {
        f->v = v;
        f->len = vlen;
        if ((f->kind == F_EXPIRED || f->kind == F_LEASE_STALE) &&
            f->meta.expires_ms + (uint64_t)ks->stale_s * 1000u <=
                uc__wall_ms()) {
            /* Past the grace as well: nothing to serve. */
            found_clear(f);
            f->kind = f->kind == F_EXPIRED ? F_MISS : F_LEASE;
        }
    } else {
        free(v);
    }
}

/* Makes sure a loader's buffer is NUL-terminated, as get's values are. */
static int terminate(char **val, size_t len)
{
    char *p = realloc(*val, len + 1);
    if (p == NULL) {
        return UC_ENOMEM;
    }
    p[len] = '\0';
    *val = p;
    return UC_OK;
}

/* The store's answer was a changed dataset found by a new connection. */
static int distrusted(const uc_cache_t *c, int rc)
{
    return rc == UC_EUNAVAILABLE && atomic_load(&c->be->distrust) != 0;
}

/*
 * Whether the store's dataset may be used; when it was just found changed,
 * one caller drops it at once (the others bypass until that is done), so a
 * cache does not wait for the worker's next tick.
 */
static int trusted(uc_cache_t *c)
{
    if (atomic_load_explicit(&c->be->distrust, memory_order_acquire) == 0) {
        return 1;
    }
    return uc__trust_restore(c) == UC_OK;
}

/* ---- one call's state ------------------------------------------------------
 */

typedef struct call {
    uc_cache_t *c;
    entry_t e;
    const char *const *fields;
    size_t nfields;
    uc_loader_fn loader;
    void *loader_arg;
    uc_validator_fn validator;
    void *validator_arg;
    uint32_t flags;

    int use_near;            /* the near cache takes part in this call */
    uint64_t ticket;         /* taken before the store was read */
    uc__near_entry_t *stale; /* a value past its TTL to fall back on */
    uc_tier_t stale_tier;

    char lease[UC__LEASE_LEN]; /* ours, when have_lease */
    char *lease_val;           /* the lease's whole value (over a stale one) */
    size_t lease_len;
    int have_lease;
    uc__flight_t *flight; /* led by this call, or NULL */
    int suspect;          /* our fill lost its lease to an invalidation */
    int own_loader;       /* the keyspace's loader, whose argument outlives
                             the call: the load may run in the background */
    int reentrant;        /* a loader of this very entry, up this
                             thread's stack, called us: waiting for
                             that fill would wait for ourselves */
    int fallback;         /* the cache failed: load, touch it no more */
    uint64_t digest;      /* of the tag versions the load recorded; 0 none */
    struct call *outer;
} call_t;

/* The get-or-load calls this thread is in, innermost first. */
static _Thread_local call_t *calls_here;

static int same_entry_outside(const call_t *k)
{
    for (const call_t *o = k->outer; o != NULL; o = o->outer) {
        if (o->c == k->c && o->e.fklen == k->e.fklen &&
            memcmp(o->e.fk, k->e.fk, k->e.fklen) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Keeps the newer of two fallback values. */
static void keep_stale(call_t *k, uc__near_entry_t *ne, uc_tier_t tier)
{
    if (ne == NULL) {
        return;
    }
    if (k->stale != NULL && uc__near_meta(k->stale)->produced_ms >=
                                uc__near_meta(ne)->produced_ms) {
        uc__near_release(ne);
        return;
    }
    uc__near_release(k->stale);
    k->stale = ne;
    k->stale_tier = tier;
}

/* Finishes this call's flight with the given outcome (entry may be NULL;
 * the flight takes its own reference). */
static void flight_done(call_t *k, int rc, uc__near_entry_t *ne,
                        uc_source_t source, uc_tier_t tier)
{
    uc__flight_result_t r;

    if (k->flight == NULL) {
        return;
    }
    if (ne != NULL) {
        uc__near_retain(ne);
    }
    r.rc = rc;
    r.entry = ne;
    r.source = source;
    r.tier = tier;
    r.suspect = k->suspect;
    uc__flight_finish(&k->c->flights, k->flight, &r);
    uc__flight_put(&k->c->flights, k->flight);
    k->flight = NULL;
}

/*
 * Finishes the flight with "not found". In a tagged keyspace the result
 * carries an empty entry whose meta holds the digest of the tag versions
 * it was judged by, so that a joiner can tell whether a tag changed since
 * (0: none recorded).
 */
static void flight_miss(call_t *k, uint64_t digest, uc_source_t source,
                        uc_tier_t tier)
{
    uc__near_entry_t *ne = NULL;

    if (k->flight == NULL) {
        return;
    }
    if (k->e.ks->ntags > 0 && digest != 0) {
        uc__near_meta_t nm;
        memset(&nm, 0, sizeof(nm));
        nm.tags = digest;
        ne = uc__near_entry_new(k->e.fk, k->e.fklen, "", 0, &nm);
    }
    flight_done(k, UC_MISS, ne, source, tier);
    uc__near_release(ne);
}

/* Answers with the fallback value, marked stale. */
static int serve_stale(call_t *k, uc_load_result_t *out)
{
    uc__near_entry_t *ne = k->stale;
    uc_tier_t tier = k->stale_tier;

    k->stale = NULL;
    UC__COUNT2(k->c, k->e.ks, stale_served);
    flight_done(k, UC_OK, ne, UC_FROM_STALE, tier);
    return give_entry(ne, k->flags, UC_FROM_STALE, tier, out);
}

/* Gives the lease back: to the expired value it was taken over, so that
 * others can still fall back on it for the rest of its grace, or to
 * nobody. */
static void lease_release(call_t *k)
{
    uc_cache_t *c = k->c;
    const char *old = k->lease_val + UC__LEASE_LEN;
    size_t oldlen = k->lease_len - UC__LEASE_LEN, n = oldlen;
    uint64_t ttl = LEASE_RELEASE_MS, now = uc__wall_ms();
    char *copy = NULL;
    uc__meta_t m;

    if (!k->have_lease) {
        return;
    }
    k->have_lease = 0;
    if (oldlen > 0 && (copy = malloc(oldlen + 1)) != NULL) {
        memcpy(copy, old, oldlen);
        if (uc__envelope_open(k->e.fk, k->e.fklen, copy, &n, &m) ==
            UC__ENV_OK) {
            uint64_t end = m.expires_ms + (uint64_t)k->e.ks->stale_s * 1000u;
            if (end > now) {
                ttl = end - now;
                (void)c->be->ops->cas(c->be, k->e.fk, k->e.fklen, k->lease_val,
                                      k->lease_len, old, oldlen, ttl);
                free(copy);
                return;
            }
        }
        free(copy);
    }
    (void)c->be->ops->cas(c->be, k->e.fk, k->e.fklen, k->lease_val,
                          k->lease_len, k->lease_val, k->lease_len, ttl);
}

static void call_end(call_t *k)
{
    if (k->have_lease) {
        lease_release(k);
    }
    free(k->lease_val);
    k->lease_val = NULL;
    uc__near_release(k->stale);
    k->stale = NULL;
    if (k->flight != NULL) {
        uc__flight_result_t r = {UC_EUNAVAILABLE, UC_FROM_LOADER, UC_TIER_NONE,
                                 NULL, 0};
        uc__flight_finish(&k->c->flights, k->flight, &r);
        uc__flight_put(&k->c->flights, k->flight);
        k->flight = NULL;
    }
}

/*
 * Takes the lease: in an absent key (SET NX), or over the expired or
 * superseded value `f` read a moment ago (compare-and-set on its exact
 * bytes, which the envelope reproduces; an expired value goes inside the
 * lease for serve-stale, a superseded one does not). UC_OK, UC_ESTALE when
 * the key changed meanwhile, or the store's error.
 */
static int lease_take(call_t *k, const found_t *f)
{
    uc_cache_t *c = k->c;
    char *old = NULL;
    size_t oldlen = 0;
    int rc;

    uc__lease_new(c, k->lease);
    free(k->lease_val);
    k->lease_val = NULL;
    if (f != NULL && f->kind == F_EXPIRED) {
        rc = uc__envelope_wrap(k->e.fk, k->e.fklen, f->v, f->len, &f->meta,
                               &old, &oldlen);
        if (rc == UC_OK) {
            rc = uc__lease_wrap(k->lease, old, oldlen, &k->lease_val,
                                &k->lease_len);
        }
        if (rc == UC_OK) {
            rc = c->be->ops->cas(c->be, k->e.fk, k->e.fklen, old, oldlen,
                                 k->lease_val, k->lease_len,
                                 (uint64_t)c->env.cfg.lease_ms);
        }
        free(old);
    } else if (f != NULL && f->kind == F_SUPERSEDED) {
        rc = f->negative ? uc__negative_wrap(k->e.fk, k->e.fklen, &f->meta,
                                             &old, &oldlen)
                         : uc__envelope_wrap(k->e.fk, k->e.fklen, f->v, f->len,
                                             &f->meta, &old, &oldlen);
        if (rc == UC_OK) {
            rc =
                uc__lease_wrap(k->lease, NULL, 0, &k->lease_val, &k->lease_len);
        }
        if (rc == UC_OK) {
            rc = c->be->ops->cas(c->be, k->e.fk, k->e.fklen, old, oldlen,
                                 k->lease_val, k->lease_len,
                                 (uint64_t)c->env.cfg.lease_ms);
        }
        free(old);
    } else {
        rc = uc__lease_wrap(k->lease, NULL, 0, &k->lease_val, &k->lease_len);
        if (rc == UC_OK) {
            rc = c->be->ops->add(c->be, k->e.fk, k->e.fklen, k->lease_val,
                                 k->lease_len, (uint64_t)c->env.cfg.lease_ms);
        }
    }
    if (rc == UC_OK) {
        k->have_lease = 1;
    }
    return rc;
}

/* Stores the loaded value in place of our lease. */
static void store_fill(call_t *k, const char *v, size_t vlen,
                       const uc__meta_t *meta, uint64_t ttl)
{
    uc_cache_t *c = k->c;
    uc_keyspace_t *ks = k->e.ks;
    char *wrapped = NULL;
    size_t wlen = 0;
    uint64_t t0;
    int rc;

    if (vlen > ks->max_value) {
        UC__COUNT2(c, ks, too_big);
        rc = UC_ETOOBIG;
    } else {
        rc = uc__envelope_wrap(k->e.fk, k->e.fklen, v, vlen, meta, &wrapped,
                               &wlen);
    }
    if (rc != UC_OK) {
        return; /* call_end() hands the key back */
    }
    t0 = uc__now_us(&c->env);
    rc = c->be->ops->cas(c->be, k->e.fk, k->e.fklen, k->lease_val, k->lease_len,
                         wrapped, wlen, hard_ttl_ms(ks, ttl));
    if (distrusted(c, rc)) {
        /* The dataset changed under the fill: the lease went with it. */
        rc = UC_ESTALE;
    }
    uc__count_set(c, ks, rc, t0);
    if (rc == UC_ESTALE) {
        UC__COUNT2(c, ks, stale_rejects);
        k->suspect = 1;
    }
    if (rc == UC_OK || rc == UC_ESTALE) {
        k->have_lease = 0; /* stored, or no longer ours to give back */
    }
    free(wrapped);
}

/* Stores a remembered "not found" in place of our lease, with the tag
 * versions in `tags`. */
static void store_negative(call_t *k, const uc__meta_t *tags)
{
    uc_cache_t *c = k->c;
    uc_keyspace_t *ks = k->e.ks;
    uint64_t ttl = (uint64_t)ks->negative_ttl_s * 1000u;
    uc__meta_t m = *tags;
    char *wrapped = NULL;
    size_t wlen = 0;

    m.produced_ms = uc__wall_ms();
    m.load_us = 0;
    m.value_hash = 0;
    m.flags = 0;
    m.expires_ms = m.produced_ms + ttl;
    if (uc__negative_wrap(k->e.fk, k->e.fklen, &m, &wrapped, &wlen) != UC_OK) {
        return;
    }
    if (c->be->ops->cas(c->be, k->e.fk, k->e.fklen, k->lease_val, k->lease_len,
                        wrapped, wlen, ttl) == UC_OK) {
        k->have_lease = 0;
    }
    free(wrapped);
}

/* Calls the loader; UC_OK with a NUL-terminated *v, or its code. */
static int run_loader(call_t *k, char **v, size_t *vlen, uint64_t *load_us)
{
    uc_cache_t *c = k->c;
    uint64_t t0 = uc__now_us(&c->env);
    int rc;

    UC__COUNT2(c, k->e.ks, loads);
    *v = NULL;
    *vlen = 0;
    rc = k->loader(k->loader_arg, k->fields, k->nfields, v, vlen);
    if (rc == UC_OK && *v == NULL && *vlen > 0) {
        rc = UC_EINVAL;
    }
    if (rc == UC_OK) {
        rc = terminate(v, *vlen);
    }
    *load_us = uc__now_us(&c->env) - t0;
    if (rc == UC_OK || rc == UC_MISS) {
        /* An average of the last few loads (weight 1/8), for the bound of
         * a lease wait; racing updates lose a sample, no more. */
        uint64_t avg =
            atomic_load_explicit(&k->e.ks->load_avg_us, memory_order_relaxed);
        avg = avg == 0 ? *load_us : avg - avg / 8 + *load_us / 8;
        atomic_store_explicit(&k->e.ks->load_avg_us, avg, memory_order_relaxed);
    }
    if (rc != UC_OK) {
        free(*v);
        *v = NULL;
        if (rc != UC_MISS) {
            UC__COUNT2(c, k->e.ks, load_errors);
        }
    }
    return rc;
}

/*
 * Claims the entry's early refresh across instances: a short-lived key
 * beside the entry (in the reserved "uc:" space), set only if absent. 0
 * when another instance holds it; a store that cannot answer does not
 * stop the refresh (its compare-and-set would fail the same way).
 */
/* The claim key of the entry's early refresh into rk (UC__FULLKEY_MAX);
 * its length, 0 when it would not fit. */
static size_t claim_key(const call_t *k, char *rk)
{
    const uc_cache_t *c = k->c;
    size_t n = 0;

    if (c->plen + sizeof(REFRESH_TAG) - 1 + k->e.klen >= UC__FULLKEY_MAX) {
        return 0;
    }
    memcpy(rk, c->env.cfg.key_prefix, c->plen);
    n += c->plen;
    memcpy(rk + n, REFRESH_TAG, sizeof(REFRESH_TAG) - 1);
    n += sizeof(REFRESH_TAG) - 1;
    memcpy(rk + n, k->e.key, k->e.klen);
    n += k->e.klen;
    rk[n] = '\0';
    return n;
}

/* 1 when some instance is refreshing the entry right now. */
static int refresh_claimed(const call_t *k)
{
    char rk[UC__FULLKEY_MAX];
    size_t n = claim_key(k, rk);

    return n > 0 && k->c->be->ops->exists(k->c->be, rk, n) == UC_OK;
}

static int refresh_claim(call_t *k, char *rk, size_t *rklen)
{
    uc_cache_t *c = k->c;
    size_t n = claim_key(k, rk);

    *rklen = 0;
    if (n == 0) {
        return 1;
    }
    switch (
        c->be->ops->add(c->be, rk, n, "1", 1, (uint64_t)c->env.cfg.lease_ms)) {
    case UC_OK:
        *rklen = n; /* ours: given back when the refresh is done */
        return 1;
    case UC_ESTALE:
        return 0;
    default:
        return 1;
    }
}

/*
 * The exact bytes the entry's key holds when they are the value `ne` was
 * made from (payload, times and, in a tagged keyspace, the digest of its
 * tag versions, which the near copy keeps instead of the versions): 1 with
 * *raw (malloc()ed); 0 when the key holds anything else or cannot be read.
 */
static int current_bytes(call_t *k, const uc__near_entry_t *ne, char **raw,
                         size_t *rawlen)
{
    uc_cache_t *c = k->c;
    const uc__near_meta_t *nm = uc__near_meta(ne);
    char *cur = NULL, *copy;
    size_t curlen = 0, n;
    uc__meta_t m;
    int same;

    if (c->be->ops->get(c->be, k->e.fk, k->e.fklen, &cur, &curlen) != UC_OK) {
        return 0;
    }
    copy = malloc(curlen + 1);
    if (copy == NULL) {
        free(cur);
        return 0;
    }
    memcpy(copy, cur, curlen + 1);
    n = curlen;
    same = uc__envelope_open(k->e.fk, k->e.fklen, copy, &n, &m) == UC__ENV_OK &&
           n == uc__near_len(ne) && memcmp(copy, uc__near_value(ne), n) == 0 &&
           m.produced_ms == nm->produced_ms && m.expires_ms == nm->expires_ms &&
           m.value_hash == nm->hash && m.load_us == nm->load_us &&
           (m.ntags > 0 ? uc__tags_digest(m.tagv, m.ntags) : 0) == nm->tags;
    free(copy);
    if (!same) {
        free(cur);
        return 0;
    }
    *raw = cur;
    *rawlen = curlen;
    return 1;
}

/*
 * Early refresh of the entry whose current value is `ne`, by the leader of
 * its flight: reload, then replace the value only while the key holds
 * exactly the one that was read. *fresh is the new value (a reference), or
 * NULL when another instance refreshes it, the loader failed, or the value
 * could not be kept.
 */
static void refresh_run(call_t *k, const uc__near_entry_t *ne,
                        uc__near_entry_t **fresh)
{
    uc_cache_t *c = k->c;
    uc_keyspace_t *ks = k->e.ks;
    uc__meta_t old = meta_of(uc__near_meta(ne)), m;
    uint64_t ticket = 0;
    char *v = NULL, *oldw = NULL, *neww = NULL, *cur = NULL;
    size_t vlen = 0, oldlen = 0, newlen = 0, curlen = 0;
    uint64_t load_us, ttl;
    char rk[UC__FULLKEY_MAX];
    size_t rklen;
    int rc, use_near = near_on(c, ks);

    *fresh = NULL;
    memset(&m, 0, sizeof(m));
    /* A tagged value's envelope holds versions the near copy does not:
     * its bytes are read from the store below instead. */
    if (ks->ntags == 0 &&
        uc__envelope_wrap(k->e.fk, k->e.fklen, uc__near_value(ne),
                          uc__near_len(ne), &old, &oldw, &oldlen) != UC_OK) {
        return;
    }
    if (use_near) {
        ticket = uc__near_ticket(c->near);
        use_near = channel_healthy(c);
    }
    if (!refresh_claim(k, rk, &rklen)) {
        UC__COUNT2(c, ks, refreshes_elsewhere);
        free(oldw);
        return;
    }
    /* The claim may come right after another instance's refresh stored and
     * gave its claim back, before its invalidation reached us: a refresh
     * of a value that is gone would load for nothing. */
    if (ks->ntags > 0) {
        if (!current_bytes(k, ne, &oldw, &oldlen) ||
            tags_for_fill(c, &k->e, ticket, use_near, &m) != UC_OK) {
            UC__COUNT2(c, ks, refreshes_elsewhere);
            free(oldw);
            if (rklen > 0) {
                (void)c->be->ops->del(c->be, rk, rklen, NULL);
            }
            return;
        }
    } else if (c->be->ops->get(c->be, k->e.fk, k->e.fklen, &cur, &curlen) ==
                   UC_OK &&
               (curlen != oldlen || memcmp(cur, oldw, oldlen) != 0)) {
        UC__COUNT2(c, ks, refreshes_elsewhere);
        free(cur);
        free(oldw);
        if (rklen > 0) {
            (void)c->be->ops->del(c->be, rk, rklen, NULL);
        }
        return;
    }
    free(cur);
    UC__COUNT2(c, ks, early_refreshes);
    rc = run_loader(k, &v, &vlen, &load_us);
    if (rc != UC_OK) {
        free(oldw);
        if (rklen > 0) {
            (void)c->be->ops->del(c->be, rk, rklen, NULL);
        }
        return;
    }
    ttl = fill_ttl_ms(ks);
    m.produced_ms = uc__wall_ms();
    m.load_us = load_us > UINT32_MAX ? UINT32_MAX : (uint32_t)load_us;
    m.expires_ms = m.produced_ms + ttl;
    m.value_hash = uc__hash64(v, vlen);
    m.flags = 0; /* an early refresh: no longer the refill's */
    rc = UC_ESTALE;
    if (vlen <= ks->max_value &&
        uc__envelope_wrap(k->e.fk, k->e.fklen, v, vlen, &m, &neww, &newlen) ==
            UC_OK) {
        uint64_t t0 = uc__now_us(&c->env);
        rc = c->be->ops->cas(c->be, k->e.fk, k->e.fklen, oldw, oldlen, neww,
                             newlen, hard_ttl_ms(ks, ttl));
        uc__count_set(c, ks, rc, t0); /* a lost race is no set */
        if (rc == UC_ESTALE) {
            UC__COUNT2(c, ks, stale_rejects);
        }
    }
    free(oldw);
    free(neww);
    if (rklen > 0) {
        (void)c->be->ops->del(c->be, rk, rklen, NULL);
    }
    *fresh = near_keep(c, &k->e, ticket, use_near && rc == UC_OK, v, vlen, &m);
    free(v);
}

/* ---- background loads ------------------------------------------------------
 */

/* A load handed to the pool: the call's state (its lease and its flight
 * move here), with copies of what the caller's stack held. */
typedef struct {
    uc__job_t job;
    call_t k;
    const char **fields;
    char *fieldbuf;
    uc_source_t source;
    /* refresh: the value being replaced, and where it came from */
    uc__near_entry_t *old;
    uc_tier_t old_tier;
    /* fill: the hand-back to a caller waiting up to the soft timeout */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int done;          /* rc and ne are set; the caller takes over */
    int abandoned;     /* the caller answered stale; the job finishes */
    int rc;
    uc__near_entry_t *ne;
} bgjob_t;

static void job_free(bgjob_t *b)
{
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b->fields);
    free(b->fieldbuf);
    free(b);
}

/* Moves the lease and the flight of one call to another. */
static void move_state(call_t *to, call_t *from)
{
    to->have_lease = from->have_lease;
    memcpy(to->lease, from->lease, sizeof(to->lease));
    to->lease_val = from->lease_val;
    to->lease_len = from->lease_len;
    to->flight = from->flight;
    from->have_lease = 0;
    from->lease_val = NULL;
    from->lease_len = 0;
    from->flight = NULL;
}

/* A job carrying the call k (its lease and flight moved), or NULL. */
static bgjob_t *job_new(call_t *k, void (*run)(uc__job_t *))
{
    bgjob_t *b = calloc(1, sizeof(*b));
    pthread_condattr_t ca;
    size_t total = 1, at = 0;

    if (b == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < k->nfields; i++) {
        total += strlen(k->fields[i]) + 1;
    }
    b->fields = calloc(k->nfields + 1, sizeof(*b->fields));
    b->fieldbuf = malloc(total);
    if (b->fields == NULL || b->fieldbuf == NULL ||
        pthread_condattr_init(&ca) != 0) {
        free(b->fields);
        free(b->fieldbuf);
        free(b);
        return NULL;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        pthread_condattr_destroy(&ca);
        free(b->fields);
        free(b->fieldbuf);
        free(b);
        return NULL;
    }
    if (pthread_cond_init(&b->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        pthread_mutex_destroy(&b->mu);
        free(b->fields);
        free(b->fieldbuf);
        free(b);
        return NULL;
    }
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i < k->nfields; i++) {
        size_t n = strlen(k->fields[i]) + 1;
        memcpy(b->fieldbuf + at, k->fields[i], n);
        b->fields[i] = b->fieldbuf + at;
        at += n;
    }
    b->job.run = run;
    b->k = *k;
    b->k.fields = b->fields;
    b->k.stale = NULL;
    b->k.outer = NULL;
    b->k.reentrant = 0;
    b->k.flight = NULL;
    b->k.have_lease = 0;
    b->k.lease_val = NULL;
    move_state(&b->k, k);
    return b;
}

/* Runs in a pool thread: the background part of an early refresh. */
static void refresh_job(uc__job_t *j)
{
    bgjob_t *b = (bgjob_t *)j;
    uc__near_entry_t *fresh = NULL;

    calls_here = &b->k;
    refresh_run(&b->k, b->old, &fresh);
    calls_here = NULL;
    if (fresh != NULL) {
        flight_done(&b->k, UC_OK, fresh, UC_FROM_LOADER, UC_TIER_NONE);
        uc__near_release(fresh);
    } else {
        flight_done(&b->k, UC_OK, b->old, UC_FROM_CACHE, b->old_tier);
    }
    uc__near_release(b->old);
    call_end(&b->k);
    job_free(b);
}

/*
 * Early refresh of a hit: in the background when the load may outlive the
 * call (the keyspace's own loader), else here; either way only one caller
 * in this process refreshes, and the others answer with the current value.
 * Takes over the reference in `ne`.
 */
static int refresh(call_t *k, uc__near_entry_t *ne, uc_tier_t tier,
                   uc_load_result_t *out)
{
    uc_cache_t *c = k->c;
    uc__near_entry_t *fresh;

    if (uc__flight_begin(&c->flights, k->e.fk, k->e.fklen, 0, &k->flight) !=
        UC__FLIGHT_LEAD) {
        /* Someone here is loading it already: the current value will do. */
        k->flight = NULL;
        return give_entry(ne, k->flags, UC_FROM_CACHE, tier, out);
    }
    if (k->own_loader) {
        bgjob_t *b = job_new(k, refresh_job);
        if (b != NULL) {
            uc__near_retain(ne);
            b->old = ne;
            b->old_tier = tier;
            if (uc__bg_submit(&c->bg, &b->job) == 0) {
                UC__COUNT2(c, k->e.ks, background_loads);
                return give_entry(ne, k->flags, UC_FROM_CACHE, tier, out);
            }
            uc__near_release(b->old);
            move_state(k, &b->k);
            job_free(b);
        }
    }
    refresh_run(k, ne, &fresh);
    if (fresh == NULL) {
        flight_done(k, UC_OK, ne, UC_FROM_CACHE, tier);
        return give_entry(ne, k->flags, UC_FROM_CACHE, tier, out);
    }
    uc__near_release(ne);
    flight_done(k, UC_OK, fresh, UC_FROM_LOADER, UC_TIER_NONE);
    return give_entry(fresh, k->flags, UC_FROM_LOADER, UC_TIER_NONE, out);
}

/* A hit: answers with it, or refreshes it first when XFetch says so. */
static int hit(call_t *k, uc__near_entry_t *ne, uc_tier_t tier,
               uc_load_result_t *out)
{
    uc__meta_t m = meta_of(uc__near_meta(ne));

    if ((m.flags & UC__META_REFILLED) != 0 && !uc__refilling()) {
        UC__COUNT2(k->c, k->e.ks, refill_hits);
    }

    if (refresh_due(k->e.ks, &m, uc__wall_ms())) {
        return refresh(k, ne, tier, out);
    }
    return give_entry(ne, k->flags, UC_FROM_CACHE, tier, out);
}

/* How long a caller waits for another instance's fill, in microseconds. */
static uint64_t lease_wait_us(const call_t *k)
{
    uint64_t lease = (uint64_t)k->c->env.cfg.lease_ms * 1000u;
    uint64_t w = LEASE_WAIT_LOADS * atomic_load_explicit(&k->e.ks->load_avg_us,
                                                         memory_order_relaxed);

    if (w < (uint64_t)LEASE_WAIT_MIN_MS * 1000u) {
        w = (uint64_t)LEASE_WAIT_MIN_MS * 1000u;
    }
    return w < lease ? w : lease;
}

/*
 * Takes over the bare lease `f` found and waited out: compare-and-set of
 * its exact bytes to a lease of ours. UC_OK (ours now: load and store as
 * after lease_take), UC_ESTALE when the key changed meanwhile, or the
 * store's error. The holder, if it is alive after all, loses its store to
 * the compare-and-set, as it would to an invalidation.
 */
static int lease_takeover(call_t *k, const found_t *f)
{
    uc_cache_t *c = k->c;
    int rc;

    uc__lease_new(c, k->lease);
    free(k->lease_val);
    k->lease_val = NULL;
    rc = uc__lease_wrap(k->lease, NULL, 0, &k->lease_val, &k->lease_len);
    if (rc == UC_OK) {
        rc = c->be->ops->cas(c->be, k->e.fk, k->e.fklen, f->token,
                             UC__LEASE_LEN, k->lease_val, k->lease_len,
                             (uint64_t)c->env.cfg.lease_ms);
    }
    if (rc == UC_OK) {
        k->have_lease = 1;
        UC__COUNT2(c, k->e.ks, lease_takeovers);
    }
    return rc;
}

/*
 * Waits for another caller's fill of the entry, bounded by lease_wait_us()
 * (and by the soft timeout when there is a stale value to answer with).
 * Woken by the key's invalidation (the fill's store is a write), else it
 * re-reads with a growing pause. Leaves *f as the last read found it.
 */
static void lease_wait(call_t *k, found_t *f, found_kind_t kind)
{
    uc_cache_t *c = k->c;
    uint64_t start = uc__now_us(&c->env);
    uint64_t until = start + lease_wait_us(k);
    uint64_t soft = start + (uint64_t)c->env.cfg.soft_timeout_ms * 1000u;
    uint64_t pause = LEASE_POLL_FIRST_MS, seen = 0;

    UC__COUNT2(c, k->e.ks, lease_waits);
    if (k->flight != NULL) {
        seen = uc__flight_notified(&c->flights, k->flight);
    }
    for (;;) {
        uint64_t now = uc__now_us(&c->env);
        if (now >= until || (k->stale != NULL && now >= soft)) {
            if (now >= until) {
                UC__COUNT2(c, k->e.ks, lease_wait_timeouts);
            }
            return;
        }
        if (k->flight != NULL) {
            seen = uc__flight_wait_notify(&c->flights, k->flight, seen, pause);
        } else {
            struct timespec ts = {0, (long)(pause * 1000000u)};
            nanosleep(&ts, NULL);
        }
        pause = pause * 2 > LEASE_POLL_MAX_MS ? LEASE_POLL_MAX_MS : pause * 2;
        if (k->use_near) {
            k->ticket = uc__near_ticket(c->near);
            k->use_near = channel_healthy(c);
        }
        found_clear(f);
        read_entry(c, &k->e, k->validator, k->validator_arg, k->ticket,
                   k->use_near, f);
        if (f->kind == F_LEASE_STALE) {
            keep_stale(k, make_entry(k->e.ks, &k->e, f->v, f->len, &f->meta),
                       UC_TIER_REDIS);
            found_clear(f);
            f->kind = F_LEASE;
        }
        if (f->kind != kind) {
            return;
        }
    }
}

/*
 * Loads the entry and stores it in place of the lease, when this call
 * holds one. UC_OK with *ne the value (a reference); UC_MISS, remembered
 * when the keyspace says so; or the loader's code. The flight and the
 * fallback value are left to the caller.
 */
static int load_store(call_t *k, int bypass, uc__near_entry_t **ne)
{
    uc_keyspace_t *ks = k->e.ks;
    char *v = NULL;
    size_t vlen = 0;
    uint64_t load_us, ttl;
    uc__meta_t m;
    int had_lease = k->have_lease, rc, tags_ok = 1;
    uint64_t seen =
        k->flight != NULL ? uc__flight_notified(&k->c->flights, k->flight) : 0;

    *ne = NULL;
    memset(&m, 0, sizeof(m));
    k->digest = 0;
    if (ks->ntags > 0) {
        /* Before the loader reads the database; without them nothing is
         * kept (a bypass or a failed cache keeps nothing anyway). */
        tags_ok =
            !bypass && !k->fallback &&
            tags_for_fill(k->c, &k->e, k->ticket, k->use_near, &m) == UC_OK;
        if (tags_ok) {
            k->digest = uc__tags_digest(m.tagv, m.ntags);
        }
    }
    rc = run_loader(k, &v, &vlen, &load_us);
    if (!had_lease && k->flight != NULL &&
        uc__flight_notified(&k->c->flights, k->flight) != seen) {
        /* Loaded without a lease while the key changed: nothing proves
         * this value is not older than a write its joiners came after. */
        k->suspect = 1;
    }
    if (rc == UC_MISS) {
        if (k->have_lease && ks->negative_ttl_s > 0 && tags_ok) {
            store_negative(k, &m);
        }
        return UC_MISS;
    }
    if (rc != UC_OK) {
        return rc;
    }
    ttl = fill_ttl_ms(ks);
    m.produced_ms = uc__wall_ms();
    m.load_us = load_us > UINT32_MAX ? UINT32_MAX : (uint32_t)load_us;
    m.expires_ms = m.produced_ms + ttl;
    m.value_hash = uc__hash64(v, vlen);
    m.flags = uc__refilling() ? UC__META_REFILLED : 0;
    if (k->have_lease && tags_ok) {
        store_fill(k, v, vlen, &m, ttl);
    }
    /* Kept near even when the store failed: the ticket refuses it if any
     * invalidation of the entry arrived since before the load began. */
    *ne = near_keep(k->c, &k->e, k->ticket, k->use_near && !bypass && tags_ok,
                    v, vlen, &m);
    free(v);
    return *ne != NULL ? UC_OK : UC_ENOMEM;
}

/* Answers with what load_store() gave (the reference in ne is taken
 * over): the value, the fallback value when the load failed, or the
 * code; finishes the flight and the call. */
static int load_done(call_t *k, int rc, uc__near_entry_t *ne,
                     uc_source_t source, uc_load_result_t *out)
{
    if (rc == UC_MISS) {
        flight_miss(k, k->digest, source, UC_TIER_NONE);
        call_end(k);
        return UC_MISS;
    }
    if (rc != UC_OK) {
        if (k->stale != NULL) {
            rc = serve_stale(k, out);
            call_end(k);
            return rc;
        }
        flight_done(k, rc, NULL, source, UC_TIER_NONE);
        call_end(k);
        return rc;
    }
    flight_done(k, UC_OK, ne, source, UC_TIER_NONE);
    call_end(k);
    return give_entry(ne, k->flags, source, UC_TIER_NONE, out);
}

/* Runs in a pool thread: a fill whose caller waits for it up to the soft
 * timeout, and answers with its fallback value after that. */
static void fill_job(uc__job_t *j)
{
    bgjob_t *b = (bgjob_t *)j;
    uc__near_entry_t *ne = NULL;
    int rc;

    calls_here = &b->k;
    rc = load_store(&b->k, 0, &ne);
    calls_here = NULL;
    pthread_mutex_lock(&b->mu);
    if (!b->abandoned) {
        b->rc = rc;
        b->ne = ne;
        b->done = 1;
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
        return; /* the caller takes it from here, and frees the job */
    }
    pthread_mutex_unlock(&b->mu);
    flight_done(&b->k, rc, ne, b->source, UC_TIER_NONE);
    uc__near_release(ne);
    call_end(&b->k);
    job_free(b);
}

/*
 * A fill with a fallback value at hand: the load runs in the pool, and the
 * caller waits for it at most the soft timeout, then answers with the
 * fallback (marked stale) while the load goes on and stores when it is
 * done. Joiners of the flight answer with the fallback too, until the
 * result or an invalidation. Returns 0 when it could not hand the load
 * over (the caller loads here), else 1 with *rcp the call's code.
 */
static int load_detached(call_t *k, uc_source_t source, uc_load_result_t *out,
                         int *rcp)
{
    uc_cache_t *c = k->c;
    bgjob_t *b = job_new(k, fill_job);
    struct timespec dl;
    int rc;
    uc__near_entry_t *ne;

    if (b == NULL) {
        return 0;
    }
    b->source = source;
    if (uc__bg_submit(&c->bg, &b->job) != 0) {
        move_state(k, &b->k);
        job_free(b);
        return 0;
    }
    UC__COUNT2(c, k->e.ks, background_loads);
    dl = uc__deadline(CLOCK_MONOTONIC, (uint64_t)c->env.cfg.soft_timeout_ms);
    pthread_mutex_lock(&b->mu);
    while (!b->done) {
        if (pthread_cond_timedwait(&b->cv, &b->mu, &dl) == ETIMEDOUT) {
            break;
        }
    }
    if (b->done) {
        pthread_mutex_unlock(&b->mu);
        move_state(k, &b->k);
        k->suspect = b->k.suspect; /* the fill's verdict, for the joiners */
        rc = b->rc;
        ne = b->ne;
        job_free(b);
        *rcp = load_done(k, rc, ne, source, out);
        return 1;
    }
    /* Under the job's lock the flight cannot finish: offer it the value
     * this call answers with. */
    b->abandoned = 1;
    if (b->k.flight != NULL) {
        uc__near_retain(k->stale);
        uc__flight_offer(&c->flights, b->k.flight, k->stale, k->stale_tier);
    }
    pthread_mutex_unlock(&b->mu);
    UC__COUNT2(c, k->e.ks, soft_timeouts);
    *rcp = serve_stale(k, out);
    call_end(k);
    return 1;
}

static int get_or_load(call_t *kp, uc_keyspace_t *ks, const char *const *fields,
                       size_t nfields, const uc_load_opts_t *opts,
                       uc_load_result_t *out);

int uc_keyspace_get_or_load(uc_keyspace_t *ks, const char *const *fields,
                            size_t nfields, const uc_load_opts_t *opts,
                            uc_load_result_t *out)
{
    call_t k;
    int rc;

    k.outer = calls_here;
    calls_here = &k;
    rc = get_or_load(&k, ks, fields, nfields, opts, out);
    calls_here = k.outer;
    return rc;
}

static int get_or_load(call_t *kp, uc_keyspace_t *ks, const char *const *fields,
                       size_t nfields, const uc_load_opts_t *opts,
                       uc_load_result_t *out)
{
    uc_cache_t *c = ks->cache;
    call_t *k = kp;
    found_t f;
    uc_source_t source = UC_FROM_LOADER;
    uc__near_entry_t *ne;
    int rc, reads = 0, bypass = 0, reuse = 0, waited = 0;

    memset(&f, 0, sizeof(f));
    f.kind = F_MISS;

    /* Not memset: the entry's buffers are written by entry_of(). */
    k->c = c;
    k->flags = 0;
    k->use_near = 0;
    k->ticket = 0;
    k->stale = NULL;
    k->stale_tier = UC_TIER_NONE;
    k->lease_val = NULL;
    k->lease_len = 0;
    k->have_lease = 0;
    k->suspect = 0;
    k->fallback = 0;
    k->digest = 0;
    k->flight = NULL;
    k->fields = fields;
    k->nfields = nfields;
    k->loader = ks->loader;
    k->loader_arg = ks->loader_arg;
    k->validator = ks->validator;
    k->validator_arg = ks->validator_arg;
    if (opts != NULL) {
        k->flags = opts->flags;
        if (opts->loader != NULL) {
            k->loader = opts->loader;
            k->loader_arg = opts->loader_arg;
        }
        if (opts->validator != NULL) {
            k->validator = opts->validator;
            k->validator_arg = opts->validator_arg;
        }
    }
    if (k->loader == NULL || out == NULL ||
        entry_of(ks, fields, nfields, &k->e) != UC_OK) {
        return UC_EINVAL;
    }
    /* a read, for the record of the most read entries (warm.c) */
    uc__hot_record(ks->hot, k->e.key, k->e.klen);
    k->reentrant = same_entry_outside(k);
    k->own_loader = k->loader == ks->loader && k->loader_arg == ks->loader_arg;

    /* judge */
    if (pending_covers(c, &k->e) || !trusted(c)) {
        bypass = 1;
        goto load;
    }

    /* near: the ticket first, then the channel's health, so that a channel
     * lost in between has flushed after the ticket and refuses the fill */
    if (near_on(c, ks)) {
        k->ticket = uc__near_ticket(c->near);
        k->use_near = channel_healthy(c);
        if (!k->use_near) {
            UC__COUNT2(c, ks, near_bypasses);
        } else if ((ne = uc__near_get(c->near, ks->cls, k->e.fk, k->e.fklen,
                                      uc__wall_ms())) != NULL) {
            const uc__near_meta_t *nm = uc__near_meta(ne);
            uint64_t now = uc__wall_ms();
            /* A copy whose tags changed since is read again from the
             * store (another instance may have filled it anew); so is
             * one whose tag versions are not here and cannot be read. */
            if (now < nm->expires_ms &&
                entry_current(c, &k->e, k->ticket, 1, TAGS_NEAR_FIRST, ne) ==
                    1) {
                if (!uc__refilling()) {
                    UC__COUNT2(c, ks, hits);
                    UC__COUNT2(c, ks, near_hits);
                }
                return hit(k, ne, UC_TIER_NEAR, out);
            }
            if (now >= nm->expires_ms && now < nm->stale_ms &&
                entry_current(c, &k->e, k->ticket, 1, TAGS_NEAR_ONLY, ne) ==
                    1) {
                keep_stale(k, ne, UC_TIER_NEAR);
            } else {
                uc__near_release(ne);
            }
        }
    }

    /* flight */
    switch (k->reentrant ? UC__FLIGHT_NONE
                         : uc__flight_begin(&c->flights, k->e.fk, k->e.fklen, 1,
                                            &k->flight)) {
    case UC__FLIGHT_JOINED: {
        uc__flight_t *joined = k->flight;
        uc__flight_result_t r;
        uint64_t wait_ms = k->stale != NULL
                               ? (uint64_t)c->env.cfg.soft_timeout_ms
                               : (uint64_t)c->env.cfg.lease_ms;
        int done = uc__flight_wait(&c->flights, joined, wait_ms, &r);

        k->flight = NULL;
        uc__flight_put(&c->flights, joined);
        if (done && r.entry != NULL &&
            entry_current(c, &k->e, k->ticket, k->use_near, TAGS_STORE,
                          r.entry) != 1) {
            /* A tag of the entry changed after the leader read its
             * versions: its result may predate a write that was answered
             * before this call began. The store's versions judge it, as
             * they judge a value read from the store. */
            uc__near_release(r.entry);
            break;
        }
        if (done == 2) {
            /* The leader answered stale and loads on in the background. */
            UC__COUNT2(c, ks, flight_joins);
            UC__COUNT2(c, ks, stale_served);
            call_end(k);
            return give_entry(r.entry, k->flags, UC_FROM_STALE, r.tier, out);
        }
        if (done && r.suspect) {
            /* The leader's value may predate a write: go on alone. */
            uc__near_release(r.entry);
            break;
        }
        if (done && r.rc == UC_OK && r.entry != NULL) {
            UC__COUNT2(c, ks, flight_joins);
            call_end(k);
            return give_entry(r.entry, k->flags, r.source, r.tier, out);
        }
        if (done && r.rc == UC_MISS) {
            uc__near_release(r.entry); /* the tags' digest, if any */
            UC__COUNT2(c, ks, flight_joins);
            call_end(k);
            return UC_MISS;
        }
        if (k->stale != NULL) {
            /* The leader failed or is slow: the stale value will do. */
            rc = serve_stale(k, out);
            call_end(k);
            return rc;
        }
        if (done && r.rc != UC_OK) {
            /* The leader's loader failed; its error is ours too (a second
             * attempt right now would most likely fail the same way). */
            UC__COUNT2(c, ks, flight_joins);
            call_end(k);
            return r.rc;
        }
        /* The leader outlived the lease time: go on alone. */
        break;
    }
    case UC__FLIGHT_LEAD:
        break;
    default:
        k->flight = NULL; /* out of memory for a flight: go on without */
        break;
    }

    /* read, open; lease */
    for (;;) {
        if (!reuse) {
            found_clear(&f);
            read_entry(c, &k->e, k->validator, k->validator_arg, k->ticket,
                       k->use_near, &f);
            reads++;
        }
        reuse = 0;
        if (f.kind == F_ERROR && distrusted(c, f.rc)) {
            /* This read's new connection found a changed dataset. */
            if (!trusted(c)) {
                bypass = 1;
                goto load;
            }
            continue;
        }
        if (f.kind == F_LEASE_STALE) {
            keep_stale(k, make_entry(ks, &k->e, f.v, f.len, &f.meta),
                       UC_TIER_REDIS);
            found_clear(&f);
            f.kind = F_LEASE;
        }
        if (f.kind == F_LEASE && k->reentrant) {
            /* The lease is our own caller's: load, do not store. */
            UC__COUNT2(c, ks, lease_conflicts);
            goto load;
        }
        if (f.kind == F_LEASE) {
            lease_wait(k, &f, F_LEASE);
            if (f.kind == F_LEASE) {
                if (k->stale != NULL) {
                    /* Soft timeout (or the lease ran out) with a value to
                     * answer with. */
                    rc = serve_stale(k, out);
                    call_end(k);
                    found_clear(&f);
                    return rc;
                }
                /* The other fill never came: take its lease over, or
                 * load without storing. */
                if (f.have_token) {
                    rc = lease_takeover(k, &f);
                    if (rc == UC_OK) {
                        break;
                    }
                    if (rc == UC_ESTALE && reads < READS_MAX) {
                        continue; /* filled or taken meanwhile */
                    }
                }
                UC__COUNT2(c, ks, lease_conflicts);
                goto load;
            }
        }
        if (f.kind == F_HIT) {
            ne = near_keep(c, &k->e, k->ticket, k->use_near, f.v, f.len,
                           &f.meta);
            found_clear(&f);
            if (ne == NULL) {
                call_end(k);
                return UC_ENOMEM;
            }
            flight_done(k, UC_OK, ne, UC_FROM_CACHE, UC_TIER_REDIS);
            call_end(k);
            return hit(k, ne, UC_TIER_REDIS, out);
        }
        if (f.kind == F_NEGATIVE) {
            UC__COUNT2(c, ks, negative_hits);
            flight_miss(k, uc__tags_digest(f.meta.tagv, f.meta.ntags),
                        UC_FROM_CACHE, UC_TIER_REDIS);
            found_clear(&f);
            call_end(k);
            return UC_MISS;
        }
        if (f.kind == F_ERROR) {
            source = UC_FROM_FALLBACK;
            k->fallback = 1;
            UC__COUNT2(c, ks, fallbacks);
            goto load;
        }
        /* F_MISS, F_EXPIRED or F_SUPERSEDED: take the lease. */
        if (f.kind == F_EXPIRED) {
            keep_stale(k, make_entry(ks, &k->e, f.v, f.len, &f.meta),
                       UC_TIER_REDIS);
            if (!waited && !k->reentrant && refresh_claimed(k)) {
                /* An early refresh of this value is landing (it started
                 * before the expiry): its store is a write that wakes us.
                 * A fill now would load the same generation twice. */
                waited = 1;
                lease_wait(k, &f, F_EXPIRED);
                if (f.kind != F_EXPIRED) {
                    reuse = 1;
                    continue;
                }
                rc = serve_stale(k, out);
                call_end(k);
                found_clear(&f);
                return rc;
            }
        }
        uint64_t t1 = uc__now_us(&c->env);
        rc = lease_take(k, &f);
        if (rc == UC_OK) {
            break;
        }
        if (rc == UC_ESTALE && reads < READS_MAX) {
            /* Filled or leased between our read and now: look again. */
            continue;
        }
        if (rc == UC_ESTALE) {
            UC__COUNT2(c, ks, lease_conflicts);
        } else if (distrusted(c, rc)) {
            UC__COUNT2(c, ks, bypasses);
        } else {
            /* The fill's first write failed (OOM, ...): a failed store. */
            uc__count_set(c, ks, rc, t1);
        }
        break;
    }
    found_clear(&f);

load:
    if (bypass) {
        UC__COUNT2(c, ks, bypasses);
        source = UC_FROM_BYPASS;
        uc__near_release(k->stale); /* a pending write may be newer */
        k->stale = NULL;
    }
    found_clear(&f);
    if (k->stale != NULL && k->own_loader &&
        load_detached(k, source, out, &rc)) {
        return rc;
    }
    rc = load_store(k, bypass, &ne);
    return load_done(k, rc, ne, source, out);
}

void uc_shared_release(void *data)
{
    if (data != NULL) {
        uc__near_release(uc__near_entry_of(data));
    }
}

/* ---- get and set -----------------------------------------------------------
 */

int uc_keyspace_get(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, char **val, size_t *len)
{
    uc_cache_t *c = ks->cache;
    found_t f;
    entry_t e;

    if (val == NULL || len == NULL ||
        entry_of(ks, fields, nfields, &e) != UC_OK) {
        return UC_EINVAL;
    }
    if (pending_covers(c, &e) || !trusted(c)) {
        return UC_MISS;
    }
    read_entry(c, &e, ks->validator, ks->validator_arg, 0, 0, &f);
    if (f.kind == F_ERROR && distrusted(c, f.rc)) {
        /* The read's new connection found a changed dataset. */
        if (!trusted(c)) {
            return UC_MISS;
        }
        read_entry(c, &e, ks->validator, ks->validator_arg, 0, 0, &f);
    }
    if (f.kind == F_HIT) {
        *val = f.v;
        *len = f.len;
        return UC_OK;
    }
    found_clear(&f);
    return f.kind == F_ERROR ? f.rc : UC_MISS;
}

int uc_keyspace_set(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, const char *val, size_t len)
{
    uc_cache_t *c = ks->cache;
    uc__meta_t meta;
    char *wrapped = NULL;
    size_t wlen = 0;
    uint64_t t0, ttl;
    int rc;
    entry_t e;

    if ((len > 0 && val == NULL) ||
        entry_of(ks, fields, nfields, &e) != UC_OK) {
        return UC_EINVAL;
    }
    if (len > ks->max_value) {
        UC__COUNT2(c, ks, too_big);
        return UC_ETOOBIG;
    }
    memset(&meta, 0, sizeof(meta));
    if (ks->ntags > 0) {
        /* The versions current now: a tag invalidated after the caller
         * made the value makes it a miss. */
        rc = tags_for_fill(c, &e, 0, 0, &meta);
        if (distrusted(c, rc) && trusted(c)) {
            rc = tags_for_fill(c, &e, 0, 0, &meta);
        }
        if (rc != UC_OK) {
            uc__count_set(c, ks, rc, uc__now_us(&c->env));
            return rc;
        }
    }
    ttl = (uint64_t)ks->ttl_s * 1000u;
    meta.produced_ms = uc__wall_ms();
    meta.load_us = 0;
    meta.expires_ms = meta.produced_ms + ttl;
    meta.value_hash = 0;
    rc = uc__envelope_wrap(e.fk, e.fklen, val, len, &meta, &wrapped, &wlen);
    if (rc != UC_OK) {
        return rc;
    }
    t0 = uc__now_us(&c->env);
    rc = c->be->ops->put(c->be, e.fk, e.fklen, wrapped, wlen,
                         hard_ttl_ms(ks, ttl));
    if (distrusted(c, rc) && trusted(c)) {
        /* This call's new connection found a changed dataset, now
         * dropped and adopted: store into the adopted one. */
        rc = c->be->ops->put(c->be, e.fk, e.fklen, wrapped, wlen,
                             hard_ttl_ms(ks, ttl));
    }
    uc__count_set(c, ks, rc, t0);
    free(wrapped);
    /* A set is a write: this process's own copy goes at once (the others'
     * go with Redis' invalidation message). */
    if (c->near != NULL) {
        uc__near_invalidate(c->near, e.fk, e.fklen);
    }
    return rc;
}
